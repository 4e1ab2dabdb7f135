# nlme::lme fits. `random` arrives as formula text or a named list of formula text
# (outermost level first); `correlation` as list(type, form, p, q).

# `names` maps the user's column names to the generated ones `data` has (r/formula.R);
# a dict's keys arrive already renamed.
pylme_nlme_random <- function(random, env, names = NULL) {
  if (is.character(random)) return(pylme_formula(random, env, names))
  out <- lapply(random, pylme_formula, env = env, names = names)
  names(out) <- names(random)
  out
}

pylme_nlme_correlation <- function(spec, env, names = NULL) {
  if (is.null(spec)) return(NULL)
  form <- if (is.null(spec$form)) ~1 else pylme_formula(spec$form, env, names)
  switch(spec$type,
    AR1 = nlme::corAR1(form = form),
    CAR1 = nlme::corCAR1(form = form),
    ARMA = nlme::corARMA(form = form, p = as.integer(spec$p), q = as.integer(spec$q)),
    CompSymm = nlme::corCompSymm(form = form),
    stop("unknown correlation structure: ", spec$type, call. = FALSE))
}

pylme_fit_lme <- function(env, fixed, random, correlation, reml, control, names = NULL) {
  # Formulas and structures go into the call as objects (they are small, and
  # predict.lme re-evaluates them from the stored call); the data stay a name.
  fixed_f <- pylme_formula(fixed, env, names)
  random_f <- pylme_nlme_random(random, env, names)
  corr <- pylme_nlme_correlation(correlation, env, names)
  aliased <- pylme_check_fixed_rank(fixed_f, env$data)
  if (length(aliased) > 0L) return(list(aliased = aliased))
  control <- as.list(control)
  control$returnObject <- TRUE
  env$control <- do.call(nlme::lmeControl, control)
  method <- if (isTRUE(reml)) "REML" else "ML"
  call <- bquote(nlme::lme(fixed = .(fixed_f), data = data, random = .(random_f),
                           correlation = .(corr), method = .(method),
                           control = control, na.action = stats::na.omit))
  fit <- pylme_tag_names(eval(call, env), names)
  list(fit = fit, fixed = pylme_lme_fixed(fit), ran_pars = pylme_lme_ran_pars(fit, correlation),
       glance = pylme_lme_glance(fit), fixef = nlme::fixef(fit),
       vcov = pylme_vcov_frame(stats::vcov(fit)),
       used_rows = pylme_used_rows(fit$na.action, nrow(env$data)))
}

pylme_lme_fixed <- function(fit) {
  tt <- summary(fit)$tTable
  pylme_fixed_table(rownames(tt), tt[, "Value"], tt[, "Std.Error"], tt[, "t-value"], tt[, "DF"],
                    tt[, "p-value"])
}

pylme_lme_ran_pars <- function(fit, correlation) {
  covs <- lapply(as.matrix(fit$modelStruct$reStruct), function(M) M * stats::sigma(fit)^2)
  levels <- rev(names(covs))  # nlme stores the innermost level first; report outermost first
  parts <- lapply(levels, function(g) pylme_cov_rows(g, covs[[g]]))
  parts[[length(parts) + 1L]] <- list(group = "Residual", term = "sd__Observation",
                                      estimate = stats::sigma(fit))
  cs <- fit$modelStruct$corStruct
  if (!is.null(cs)) {
    values <- stats::coef(cs, unconstrained = FALSE)
    terms <- switch(correlation$type,
      AR1 = "phi", CAR1 = "phi", CompSymm = "rho",
      ARMA = c(if (correlation$p > 0) paste0("phi", seq_len(correlation$p)),
               if (correlation$q > 0) paste0("theta", seq_len(correlation$q))))
    parts[[length(parts) + 1L]] <- list(group = rep("Residual", length(values)), term = terms,
                                        estimate = unname(values))
  }
  rows <- pylme_bind_rows(parts)
  pylme_ran_pars_table(rows$group, rows$term, rows$estimate)
}

pylme_lme_glance <- function(fit) {
  ll <- stats::logLik(fit)
  ngrps <- fit$dims$ngrps[seq_len(fit$dims$Q)]
  list(nobs = stats::nobs(fit), sigma = stats::sigma(fit), logLik = as.numeric(ll),
       AIC = stats::AIC(fit), BIC = stats::BIC(fit), reml = identical(fit$method, "REML"),
       df = as.numeric(attr(ll, "df")), converged = TRUE, singular = FALSE,
       ngrps = as.list(rev(ngrps)))
}

pylme_lme_ranef <- function(fit) {
  re <- nlme::ranef(fit)
  if (is.data.frame(re)) {
    re <- list(re)
    names(re) <- names(fit$modelStruct$reStruct)
  }
  pylme_ranef_frames(re)
}

pylme_lme_coef <- function(fit) {
  Q <- fit$dims$Q
  levels <- names(fit$modelStruct$reStruct)  # innermost first, matching level = Q..1
  out <- lapply(seq_len(Q), function(q) stats::coef(fit, level = Q - q + 1L))
  names(out) <- levels
  pylme_ranef_frames(out)
}

pylme_lme_ran_vals <- function(fit) pylme_ran_vals_long(pylme_lme_ranef(fit))

# For newdata, each row gets the prediction of its innermost known level: a new patient
# of a known therapist gets the therapist's, a new patient of no known group the
# population's, as lme4 and glmmTMB do with allow.new.levels (nlme gives NA).
pylme_lme_predict <- function(fit, newdata, include_random) {
  Q <- fit$dims$Q
  level <- if (isTRUE(include_random)) Q else 0L
  if (is.null(newdata)) return(as.numeric(stats::fitted(fit, level = level)))
  if (level == 0L) {
    return(as.numeric(stats::predict(fit, newdata = newdata, level = 0L, na.action = stats::na.pass)))
  }
  # one level at a time: with level = 0:Q nlme lays out a one-row newdata differently
  out <- rep(NA_real_, nrow(newdata))
  for (q in 0:Q) {
    value <- as.numeric(stats::predict(fit, newdata = newdata, level = q, na.action = stats::na.pass))
    out <- ifelse(is.na(value), out, value)
  }
  out
}

pylme_lme_augment <- function(fit) {
  list(fitted = as.numeric(stats::fitted(fit)), resid = as.numeric(stats::residuals(fit, type = "response")))
}

pylme_lme_contrast <- function(fit, L, ddf) NULL

# Approximate interval of a random-effect SD from nlme::intervals (Wald on the log scale).
pylme_lme_sd_interval <- function(fit, group, term, level) {
  iv <- tryCatch(nlme::intervals(fit, level = level, which = "var-cov")$reStruct[[group]],
                 error = function(e) NULL)
  name <- paste0("sd(", term, ")")
  if (is.null(iv) || !name %in% rownames(iv)) return(c(NA_real_, NA_real_))
  as.numeric(iv[name, c("lower", "upper")])
}
