# lme4 / lmerTest fits. The data are bound as `data` in the fit's own environment
# `env`, and the call is evaluated there, so fit@call says `data = data`.

# `names` maps the user's column names to the generated ones `data` has (r/formula.R);
# `control` holds options Python checked against its allow-list (engines/_control.py).
pylme_fit_lmer <- function(env, formula, reml, ddf, control, names = NULL) {
  f <- pylme_formula(formula, env, names)
  aliased <- pylme_check_fixed_rank(f, env$data)
  if (length(aliased) > 0L) return(list(aliased = aliased))
  control <- as.list(control)
  # the rank was checked above (sparsely, so Ctrl-C is not stuck in LINPACK): lme4's own
  # dense qr() of the same design would take as long again, never checking for Ctrl-C
  if (is.null(control$check.rankX)) control$check.rankX <- "ignore"
  env$control <- do.call(lme4::lmerControl, control)
  fun <- if (identical(ddf, "none")) quote(lme4::lmer) else quote(lmerTest::lmer)
  call <- bquote(.(fun)(.(f), data = data, REML = .(reml), control = control))
  fit <- pylme_tag_names(eval(call, env), names)
  list(fit = fit, fixed = pylme_lmer_fixed(fit, ddf), ran_pars = pylme_lmer_ran_pars(fit),
       glance = pylme_lmer_glance(fit), fixef = lme4::fixef(fit),
       vcov = pylme_vcov_frame(stats::vcov(fit)),
       used_rows = pylme_used_rows(attr(stats::model.frame(fit), "na.action"), nrow(env$data)))
}

pylme_lmer_fixed <- function(fit, ddf) {
  if (identical(ddf, "none") || !inherits(fit, "lmerModLmerTest")) {
    co <- summary(methods::as(fit, "lmerMod"))$coefficients
    return(pylme_fixed_table(rownames(co), co[, "Estimate"], co[, "Std. Error"], co[, "t value"], NULL, NULL))
  }
  method <- if (identical(ddf, "kenward-roger")) "Kenward-Roger" else "Satterthwaite"
  co <- summary(fit, ddf = method)$coefficients
  pylme_fixed_table(rownames(co), co[, "Estimate"], co[, "Std. Error"], co[, "t value"],
                    co[, "df"], co[, "Pr(>|t|)"])
}

pylme_lmer_ran_pars <- function(fit) {
  vc <- as.data.frame(lme4::VarCorr(fit), order = "lower.tri")
  term <- ifelse(is.na(vc$var2),
                 paste0("sd__", ifelse(is.na(vc$var1), "Observation", vc$var1)),
                 paste0("cor__", vc$var1, ".", vc$var2))
  pylme_ran_pars_table(vc$grp, term, vc$sdcor)
}

pylme_lmer_converged <- function(fit) {
  # lme4 files its singular-fit note among the convergence messages; that is a
  # property of the estimate (reported as `singular`), not a failure to converge
  conv <- fit@optinfo$conv
  msgs <- grep("singular", as.character(conv$lme4$messages), value = TRUE, invert = TRUE)
  length(msgs) == 0L && (is.null(conv$opt) || conv$opt == 0)
}

pylme_lmer_glance <- function(fit) {
  ll <- stats::logLik(fit)
  list(nobs = stats::nobs(fit), sigma = stats::sigma(fit), logLik = as.numeric(ll),
       AIC = stats::AIC(fit), BIC = stats::BIC(fit), reml = lme4::isREML(fit),
       df = as.numeric(attr(ll, "df")), converged = pylme_lmer_converged(fit),
       singular = lme4::isSingular(fit), ngrps = as.list(lme4::ngrps(fit)),
       conv_messages = as.character(fit@optinfo$conv$lme4$messages))
}

pylme_lmer_ranef <- function(fit) pylme_ranef_frames(lme4::ranef(fit))

pylme_lmer_coef <- function(fit) pylme_ranef_frames(stats::coef(fit))

pylme_lmer_ran_vals <- function(fit) {
  re <- lme4::ranef(fit, condVar = TRUE)
  rows <- lapply(names(re), function(g) {
    d <- re[[g]]
    pv <- attr(d, "postVar")
    do.call(rbind, lapply(seq_along(d), function(k) {
      se <- pylme_lmer_cond_se(pv, k, nrow(d))
      data.frame(group = g, level = rownames(d), term = names(d)[k], estimate = d[[k]],
                 std_error = se, stringsAsFactors = FALSE)
    }))
  })
  do.call(rbind, rows)
}

# Conditional SD of column k of a factor's random effects. With several terms of one
# factor ((1 | g) + (0 + x | g)) lme4 gives postVar as a list of arrays, one per term.
pylme_lmer_cond_se <- function(pv, k, n) {
  if (is.null(pv)) return(rep(NA_real_, n))
  if (!is.list(pv)) return(sqrt(pv[k, k, ]))
  offset <- 0L
  for (a in pv) {
    m <- dim(a)[1L]
    if (k <= offset + m) return(sqrt(a[k - offset, k - offset, ]))
    offset <- offset + m
  }
  rep(NA_real_, n)
}

pylme_lmer_predict <- function(fit, newdata, include_random) {
  re_form <- if (isTRUE(include_random)) NULL else NA
  if (is.null(newdata)) return(as.numeric(stats::predict(fit, re.form = re_form)))
  as.numeric(stats::predict(fit, newdata = newdata, re.form = re_form, allow.new.levels = TRUE))
}

pylme_lmer_augment <- function(fit) {
  list(fitted = as.numeric(stats::fitted(fit)), resid = as.numeric(stats::residuals(fit)))
}

# A linear combination L of the fixed effects with the fit's own df (Satterthwaite or
# Kenward-Roger through lmerTest), for simple slopes at moderator values.
pylme_lmer_contrast <- function(fit, L, ddf) {
  if (!inherits(fit, "lmerModLmerTest") || identical(ddf, "none")) return(NULL)
  method <- if (identical(ddf, "kenward-roger")) "Kenward-Roger" else "Satterthwaite"
  ct <- lmerTest::contest1D(fit, L, ddf = method)
  list(estimate = ct[["Estimate"]], std_error = ct[["Std. Error"]], df = ct[["df"]],
       statistic = ct[["t value"]], p_value = ct[["Pr(>|t|)"]])
}

# Profile-likelihood interval of one random-effect SD (lme4 parameter name sd_<term>|<group>).
# Only that parameter is profiled (parm = its name): the same interval as profiling every
# variance parameter, at a fraction of the refits, and a failing profile of another
# parameter (an SD at 0) cannot take this one down with it.
pylme_lmer_sd_interval <- function(fit, group, term, level) {
  vc <- as.data.frame(lme4::VarCorr(fit))
  known <- paste0("sd_", vc$var1, "|", vc$grp)[is.na(vc$var2) & vc$grp != "Residual"]
  if (!paste0("sd_", term, "|", group) %in% known) return(c(NA_real_, NA_real_))
  # the variance table makes a factor's repeated terms unique ("g", "g.1"); the profile
  # names them by the factor itself
  raw <- stats::setNames(names(lme4::getME(fit, "cnms")), names(lme4::VarCorr(fit)))
  name <- paste0("sd_", term, "|", if (group %in% names(raw)) raw[[group]] else group)
  ci <- stats::confint(fit, parm = name, method = "profile", level = level, oldNames = FALSE,
                       quiet = TRUE)
  if (!name %in% rownames(ci)) return(c(NA_real_, NA_real_))
  as.numeric(ci[name, ])
}

# Refit `full` to response y starting from the nested fit's covariance parameters, the
# extra ones (the tested slope) just above 0.
pylme_lmer_refit_from <- function(full, nested, y) {
  start <- lme4::getME(full, "theta")
  known <- lme4::getME(nested, "theta")
  shared <- intersect(names(start), names(known))
  start[] <- 0.05
  start[shared] <- known[shared]
  from <- full
  from@pp <- full@pp$copy()
  from@pp$setTheta(as.numeric(start))
  lme4::refit(from, y)
}

# Parametric bootstrap of the likelihood ratio of two nested fits (the random-slope test,
# as pbkrtest::PBmodcomp does it): `nsim` responses simulated from the reduced fit, both
# models refitted to each (refit() keeps each model's terms and starts from its
# estimates), LR = 2 * (logLik full - logLik reduced) on the fits' own criterion.
# The caller's R random-number state is restored. Warnings and messages of the refits
# (convergence, "boundary (singular) fit") are counted, not raised one by one: the
# first of each kind is returned with the count.
pylme_lmer_pb_lr <- function(full, reduced, nsim, seed) {
  had_seed <- exists(".Random.seed", envir = globalenv(), inherits = FALSE)
  if (had_seed) old_seed <- get(".Random.seed", envir = globalenv(), inherits = FALSE)
  on.exit(if (had_seed) assign(".Random.seed", old_seed, envir = globalenv())
          else if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
            rm(".Random.seed", envir = globalenv()))
  set.seed(seed)
  full <- methods::as(full, "lmerMod")
  reduced <- methods::as(reduced, "lmerMod")
  ys <- stats::simulate(reduced, nsim = nsim)
  lr <- numeric(nsim)
  seen <- list(warning = 0L, message = 0L)
  first <- list(warning = NA_character_, message = NA_character_)
  note <- function(kind, restart) function(cond) {
    seen[[kind]] <<- seen[[kind]] + 1L
    if (is.na(first[[kind]])) first[[kind]] <<- trimws(conditionMessage(cond))
    invokeRestart(restart)
  }
  for (b in seq_len(nsim)) {
    # simulate() gives the used rows only and says so in its na.action; refit() would
    # drop those rows again from a response without that attribute
    y <- ys[[b]]
    attr(y, "na.action") <- attr(ys, "na.action")
    lr[b] <- withCallingHandlers({
      r <- lme4::refit(reduced, y)
      ll_r <- as.numeric(stats::logLik(r))
      ll_f <- as.numeric(stats::logLik(lme4::refit(full, y)))
      # refit() starts from the observed fit's estimates; where that ends below the
      # nested model (an optimizer shortfall), start again from the nested model's optimum
      if (ll_f < ll_r - 1e-6) ll_f <- max(ll_f, as.numeric(stats::logLik(pylme_lmer_refit_from(full, r, y))))
      2 * (ll_f - ll_r)
    }, warning = note("warning", "muffleWarning"), message = note("message", "muffleMessage"))
  }
  list(lr = lr, warnings = seen$warning, first_warning = first$warning,
       messages = seen$message, first_message = first$message)
}
