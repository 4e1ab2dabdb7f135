# Versions for a report's provenance: R itself and the named packages ("" when a
# package is not installed). Package names arrive as a character vector.
pylme_versions <- function(packages) {
  found <- vapply(packages, function(p) {
    v <- suppressWarnings(utils::packageDescription(p, fields = "Version"))
    if (length(v) != 1L || is.na(v)) "" else as.character(v)
  }, character(1), USE.NAMES = FALSE)
  data.frame(name = c("R", packages), version = c(paste(R.version$major, R.version$minor, sep = "."), found),
             stringsAsFactors = FALSE)
}
