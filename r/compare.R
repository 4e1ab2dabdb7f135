# compare(): likelihood of an R fit under maximum likelihood, refitting a REML fit.
# The refit evaluates the model's own call in the fit's environment (where `data`
# and the formulas were bound by the engine), so no data set is embedded in a call.

pylme_compare_is_reml <- function(fit) {
  if (inherits(fit, "merMod")) return(lme4::isREML(fit))
  if (inherits(fit, "lme")) return(identical(fit$method, "REML"))
  if (inherits(fit, "glmmTMB")) return(isTRUE(fit$modelInfo$REML))
  stop("compare: unsupported model class ", paste(class(fit), collapse = "/"), call. = FALSE)
}

pylme_compare_refit_ml <- function(fit) {
  if (!pylme_compare_is_reml(fit)) return(fit)
  if (inherits(fit, "merMod")) return(lme4::refitML(fit))
  env <- environment(stats::terms(fit))
  if (inherits(fit, "lme")) {
    call <- stats::update(fit, method = "ML", evaluate = FALSE)
    call[[1L]] <- quote(nlme::lme)  # the stored call names lme.formula, which nlme does not export
  } else {
    call <- stats::update(fit, REML = FALSE, evaluate = FALSE)
  }
  eval(call, env)
}

# list(logLik, df, nobs, AIC, BIC, reml) of `fit` after an ML refit (when ml = TRUE)
pylme_compare_loglik <- function(fit, ml) {
  m <- if (isTRUE(ml)) pylme_compare_refit_ml(fit) else fit
  ll <- stats::logLik(m)
  list(logLik = as.numeric(ll), df = as.numeric(attr(ll, "df")), nobs = stats::nobs(m),
       AIC = stats::AIC(m), BIC = stats::BIC(m), reml = pylme_compare_is_reml(m))
}
