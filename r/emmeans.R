# emmeans' view of a simple slope, used to check AllianceFit.simple_slopes(): the trend
# of `var` at values of a numeric moderator (or at each level of a factor moderator).
pylme_emtrends <- function(fit, var, moderator, at) {
  var <- pylme_fit_name(fit, var)  # the fit's columns carry generated names (r/formula.R)
  moderator <- pylme_fit_name(fit, moderator)
  spec <- stats::as.formula(call("~", as.name(moderator)))
  at_list <- if (is.null(at)) list() else stats::setNames(list(at), moderator)
  args <- list(fit, specs = spec, var = var, at = at_list)
  if (inherits(fit, "merMod")) {
    args$lmer.df <- "satterthwaite"
    args$lmerTest.limit <- 1e7  # emmeans skips df above 3000 rows by default
  }
  em <- summary(do.call(emmeans::emtrends, args), infer = c(TRUE, TRUE))
  trend <- paste0(var, ".trend")
  data.frame(at = as.character(em[[moderator]]), estimate = em[[trend]], std_error = em$SE,
             df = em$df, p_value = em$p.value, stringsAsFactors = FALSE)
}

# R's own Benjamini-Hochberg, to check the Python one.
pylme_p_adjust_bh <- function(p) stats::p.adjust(p, method = "BH")
