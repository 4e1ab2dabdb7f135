# glmmTMB fits, including ar1(time_factor + 0 | id) terms; with dispformula = ~0 an ar1
# term plus random intercepts is the pure residual-AR(1) model.

# The optimizers control = list(optimizer = "...") may name: a fixed table, so a
# control value never picks an arbitrary R function.
pylme_glmmtmb_optimizers <- list(nlminb = stats::nlminb, optim = stats::optim)

pylme_glmmtmb_control <- function(control) {
  control <- as.list(control)
  if (!is.null(control$optimizer)) {
    name <- control$optimizer
    if (!is.character(name) || length(name) != 1L || !name %in% names(pylme_glmmtmb_optimizers)) {
      stop("glmmTMB optimizer must be one of: ", paste(names(pylme_glmmtmb_optimizers), collapse = ", "),
           call. = FALSE)
    }
    control$optimizer <- pylme_glmmtmb_optimizers[[name]]
  }
  do.call(glmmTMB::glmmTMBControl, control)
}

# `names`: the user's column names -> the generated ones `data` has (r/formula.R).
pylme_fit_glmmtmb <- function(env, formula, reml, dispformula, control, names = NULL) {
  f <- pylme_formula(formula, env, names)
  disp <- if (is.null(dispformula)) ~1 else pylme_formula(dispformula, env, names)
  aliased <- pylme_check_fixed_rank(f, env$data)
  if (length(aliased) > 0L) return(list(aliased = aliased))
  env$control <- pylme_glmmtmb_control(control)
  call <- bquote(glmmTMB::glmmTMB(.(f), data = data, REML = .(isTRUE(reml)), dispformula = .(disp),
                                  control = control, na.action = stats::na.omit))
  fit <- pylme_tag_names(eval(call, env), names)
  list(fit = fit, fixed = pylme_glmmtmb_fixed(fit), ran_pars = pylme_glmmtmb_ran_pars(fit, dispformula),
       glance = pylme_glmmtmb_glance(fit), fixef = glmmTMB::fixef(fit)$cond,
       vcov = pylme_vcov_frame(stats::vcov(fit)$cond),
       used_rows = pylme_used_rows(attr(stats::model.frame(fit), "na.action"), nrow(env$data)))
}

pylme_glmmtmb_fixed <- function(fit) {
  co <- summary(fit)$coefficients$cond
  pylme_fixed_table(rownames(co), co[, "Estimate"], co[, "Std. Error"], co[, "z value"], NULL,
                    co[, "Pr(>|z|)"])
}

pylme_glmmtmb_ran_pars <- function(fit, dispformula) {
  vc <- glmmTMB::VarCorr(fit)$cond
  structs <- fit$modelInfo$reStruc$condReStruc
  parts <- list()
  for (k in seq_along(vc)) {
    # VarCorr's names mangle repeated grouping factors ("patient.1"); grpVar holds the
    # grouping factor as the user wrote it after the bar
    group <- fit$modelInfo$grpVar[[k]]
    cov <- vc[[k]]
    kind <- names(structs[[k]]$blockCode)
    if (identical(kind, "ar1")) {
      parts[[length(parts) + 1L]] <- list(
        group = c(group, group), term = c("sd__ar1", "cor__ar1"),
        estimate = c(unname(attr(cov, "stddev")[1L]), attr(cov, "correlation")[2L, 1L]))
    } else {
      parts[[length(parts) + 1L]] <- pylme_cov_rows(group, cov)
    }
  }
  if (is.null(dispformula) || !identical(gsub(" ", "", dispformula), "~0")) {
    parts[[length(parts) + 1L]] <- list(group = "Residual", term = "sd__Observation",
                                        estimate = stats::sigma(fit))
  }
  rows <- pylme_bind_rows(parts)
  pylme_ran_pars_table(rows$group, rows$term, rows$estimate)
}

pylme_glmmtmb_glance <- function(fit) {
  ll <- stats::logLik(fit)
  flist <- fit$modelInfo$reTrms$cond$flist
  ngrps <- lapply(flist, nlevels)
  list(nobs = stats::nobs(fit), sigma = stats::sigma(fit), logLik = as.numeric(ll),
       AIC = stats::AIC(fit), BIC = stats::BIC(fit), reml = isTRUE(fit$modelInfo$REML),
       df = as.numeric(attr(ll, "df")),
       converged = isTRUE(fit$sdr$pdHess) && identical(as.integer(fit$fit$convergence), 0L),
       singular = FALSE, ngrps = ngrps)
}

pylme_glmmtmb_ranef <- function(fit) pylme_ranef_frames(glmmTMB::ranef(fit)$cond)

pylme_glmmtmb_coef <- function(fit) {
  fe <- glmmTMB::fixef(fit)$cond
  re <- glmmTMB::ranef(fit)$cond
  out <- lapply(re, function(d) {
    for (term in intersect(names(d), names(fe))) d[[term]] <- d[[term]] + fe[[term]]
    d
  })
  pylme_ranef_frames(out)
}

pylme_glmmtmb_ran_vals <- function(fit) pylme_ran_vals_long(pylme_glmmtmb_ranef(fit))

pylme_glmmtmb_predict <- function(fit, newdata, include_random) {
  re_form <- if (isTRUE(include_random)) NULL else NA
  if (is.null(newdata)) return(as.numeric(stats::predict(fit, re.form = re_form)))
  as.numeric(stats::predict(fit, newdata = newdata, re.form = re_form, allow.new.levels = TRUE))
}

pylme_glmmtmb_augment <- function(fit) {
  list(fitted = as.numeric(stats::fitted(fit)), resid = as.numeric(stats::residuals(fit, type = "response")))
}

pylme_glmmtmb_contrast <- function(fit, L, ddf) NULL

# Wald interval of a random-effect SD (log scale), as glmmTMB's confint() names it.
pylme_glmmtmb_sd_interval <- function(fit, group, term, level) {
  ci <- tryCatch(stats::confint(fit, parm = "theta_", level = level), error = function(e) NULL)
  name <- paste0("Std.Dev.", term, "|", group)
  if (is.null(ci) || !name %in% rownames(ci)) return(c(NA_real_, NA_real_))
  as.numeric(ci[name, 1:2])
}
