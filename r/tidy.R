# Shared table builders: every engine's tables leave R in the same shape, with the
# column names of broom.mixed (effect, group, term, estimate, std_error, statistic,
# df, p_value), so Python has one result type for all of them.

pylme_fixed_table <- function(term, estimate, std_error, statistic, df, p_value) {
  n <- length(term)
  num <- function(x) if (is.null(x)) rep(NA_real_, n) else as.numeric(x)
  data.frame(effect = rep("fixed", n), group = rep(NA_character_, n), term = as.character(term),
             estimate = num(estimate), std_error = num(std_error), statistic = num(statistic),
             df = num(df), p_value = num(p_value), stringsAsFactors = FALSE)
}

pylme_ran_pars_table <- function(group, term, estimate) {
  n <- length(term)
  data.frame(effect = rep("ran_pars", n), group = as.character(group), term = as.character(term),
             estimate = as.numeric(estimate), std_error = rep(NA_real_, n),
             statistic = rep(NA_real_, n), df = rep(NA_real_, n), p_value = rep(NA_real_, n),
             stringsAsFactors = FALSE)
}

# One covariance matrix of random effects -> sd__ and cor__ rows, broom.mixed naming.
pylme_cov_rows <- function(group, cov) {
  cov <- as.matrix(cov)
  terms <- colnames(cov)
  if (is.null(terms)) terms <- "(Intercept)"
  sds <- sqrt(diag(cov))
  groups <- rep(group, length(sds))
  names_out <- paste0("sd__", terms)
  values <- unname(sds)
  if (length(terms) > 1L) {
    cors <- stats::cov2cor(cov)
    for (i in seq_along(terms)[-length(terms)]) {
      for (j in seq.int(i + 1L, length(terms))) {
        groups <- c(groups, group)
        names_out <- c(names_out, paste0("cor__", terms[i], ".", terms[j]))
        values <- c(values, cors[i, j])
      }
    }
  }
  list(group = groups, term = names_out, estimate = values)
}

pylme_bind_rows <- function(parts) {
  list(group = unlist(lapply(parts, `[[`, "group")), term = unlist(lapply(parts, `[[`, "term")),
       estimate = unlist(lapply(parts, `[[`, "estimate")))
}

# Conditional modes as lme4 means ranef(): one data.frame per grouping factor, with the
# level names in a column (R keeps them as row names, which do not survive conversion).
pylme_ranef_frames <- function(re) {
  out <- lapply(re, function(d) {
    d <- as.data.frame(d, check.names = FALSE)
    data.frame(level = rownames(d), d, check.names = FALSE, stringsAsFactors = FALSE)
  })
  names(out) <- names(re)
  out
}

# Rows of the data a fit used, from the na.action that model.frame/lme record.
pylme_used_rows <- function(omitted, nrow_data) {
  if (is.null(omitted)) seq_len(nrow_data) else setdiff(seq_len(nrow_data), as.integer(omitted))
}

# Covariance matrix of the fixed effects as a data.frame (term names as column names).
pylme_vcov_frame <- function(V) {
  V <- as.matrix(V)
  out <- as.data.frame(V, check.names = FALSE)
  names(out) <- colnames(V)
  out
}

# Conditional modes frames (see pylme_ranef_frames) as long ran_vals rows, for engines
# that give no conditional standard errors.
pylme_ran_vals_long <- function(frames) {
  rows <- lapply(names(frames), function(g) {
    d <- frames[[g]]
    terms <- setdiff(names(d), "level")
    do.call(rbind, lapply(terms, function(t)
      data.frame(group = g, level = d$level, term = t, estimate = d[[t]], std_error = NA_real_,
                 stringsAsFactors = FALSE)))
  })
  do.call(rbind, rows)
}
