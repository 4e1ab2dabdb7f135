# Batches of lme4 fits for power(): one call fits every replicate of a chunk.
#
# `frames` is a list of data.frames whose columns carry generated names (v1_, v2_, ...;
# engines/_names.py); `formula` and `reduced` are formula texts in the model frame's
# own names, renamed symbol by symbol by pylme_formula (r/formula.R), never pasted.
# `tests` is a list of character vectors of fixed-effect names (generated names): a
# test of one name is a Wald z test of that coefficient, a test of several names (the
# interactions of a categorical moderator) a joint Wald chi-square test.
#
# Inference is Wald (z / chi-square), from lme4::lmer: no lmerTest, so no Satterthwaite
# df are computed (they cost 2-3x per fit and a power study with tens of patients or
# more does not need them).
#
# `refit = TRUE` says every frame has the same design (rows, predictors, grouping) and
# differs only in the response: the first frame is fitted with lmer and the others with
# lme4::refit(fit, newresp), which reuses the model structure. power() passes it only
# when Python found the designs identical, and only for ML fits: with lme4 1.1-31,
# refit() of a REML fit does not reproduce it (refit(fm) of the sleepstudy REML fit
# gives logLik -875.97 against the fit's own -871.81, the ML value), so REML
# replicates are always fitted in full.
#
# A replicate whose fit fails keeps its slot (error text, NA numbers): one bad
# replicate never sinks the batch.

pylme_power_fits <- function(frames, formula, names, reml, tests, reduced = NULL,
                             refit = FALSE, slope = NULL, slope_group = NULL, check = NULL) {
  n <- length(frames)
  k <- length(tests)
  estimate <- matrix(NA_real_, n, k)
  std_error <- matrix(NA_real_, n, k)
  chisq <- matrix(NA_real_, n, k)
  chisq_df <- matrix(NA_real_, n, k)
  out <- list(
    error = rep(NA_character_, n), warnings = rep("", n),
    converged = rep(NA, n), singular = rep(NA, n),
    loglik = rep(NA_real_, n), npar = rep(NA_real_, n),
    loglik_reduced = rep(NA_real_, n), npar_reduced = rep(NA_real_, n),
    reduced_error = rep(NA_character_, n), reduced_warnings = rep("", n),
    slope_sd = rep(NA_real_, n), nobs = rep(NA_integer_, n)
  )
  control <- lme4::lmerControl()
  first <- NULL
  for (i in seq_len(n)) {
    env <- new.env(parent = environment(pylme_power_fits))
    env$data <- frames[[i]]
    env$control <- control
    refit <- isTRUE(refit) && !isTRUE(reml)
    one <- pylme_power_one(env, formula, names, reml, if (refit) first else NULL)
    out$warnings[i] <- paste(unique(one$warnings), collapse = "\n")
    if (!is.null(one$error)) {
      out$error[i] <- one$error
      next
    }
    fit <- one$fit
    if (refit && is.null(first)) first <- fit
    converged <- pylme_power_converged(fit, one$warnings)
    if (!refit) {
      second <- pylme_power_second_opinion(env, formula, names, reml, fit, converged, check)
      fit <- second$fit
      converged <- second$converged
      out$warnings[i] <- paste(c(out$warnings[i], second$note)[nzchar(c(out$warnings[i], second$note))],
                               collapse = "\n")
    }
    out$converged[i] <- converged
    out$singular[i] <- lme4::isSingular(fit)
    ll <- stats::logLik(fit)
    out$loglik[i] <- as.numeric(ll)
    out$npar[i] <- as.numeric(attr(ll, "df"))
    out$nobs[i] <- stats::nobs(fit)
    beta <- lme4::fixef(fit)
    # vcov() of a merMod without its Matrix bookkeeping (a quarter of a small fit's time)
    V <- stats::sigma(fit)^2 * chol2inv(lme4::getME(fit, "RX"))
    dimnames(V) <- list(names(beta), names(beta))
    for (j in seq_len(k)) {
      wanted <- tests[[j]]
      present <- wanted[wanted %in% names(beta)]
      # a level of a categorical moderator that lme4 dropped (rank deficient) leaves the
      # joint test with the levels it has; a single coefficient must be there
      if (length(present) == 0L) next
      if (length(wanted) == 1L) {
        estimate[i, j] <- beta[[present]]
        std_error[i, j] <- sqrt(V[present, present])
        chisq[i, j] <- (estimate[i, j] / std_error[i, j])^2
        chisq_df[i, j] <- 1
      } else {
        b <- beta[present]
        W <- V[present, present, drop = FALSE]
        stat <- tryCatch(as.numeric(t(b) %*% solve(W, b)), error = function(e) NA_real_)
        chisq[i, j] <- stat
        chisq_df[i, j] <- as.numeric(length(present))
      }
    }
    if (!is.null(slope)) out$slope_sd[i] <- pylme_power_slope_sd(fit, slope, slope_group)
    if (!is.null(reduced)) {
      red <- pylme_power_one(env, reduced, names, reml, NULL)
      out$reduced_warnings[i] <- paste(unique(red$warnings), collapse = "\n")
      if (!is.null(red$error)) {
        out$reduced_error[i] <- red$error
      } else {
        red$fit <- pylme_power_second_opinion(env, reduced, names, reml, red$fit,
                                              pylme_power_converged(red$fit, red$warnings), check)$fit
        llr <- stats::logLik(red$fit)
        out$loglik_reduced[i] <- as.numeric(llr)
        out$npar_reduced[i] <- as.numeric(attr(llr, "df"))
      }
    }
  }
  out$estimate <- estimate
  out$std_error <- std_error
  out$chisq <- chisq
  out$chisq_df <- chisq_df
  out
}

# One fit with its own warnings and messages, or its error; a full lmer fit, or a
# refit of `first` with this frame's response.
pylme_power_one <- function(env, formula, names, reml, first) {
  warnings <- character()
  fit <- withCallingHandlers(
    tryCatch({
      f <- pylme_formula(formula, env, names)
      if (is.null(first)) {
        call <- bquote(lme4::lmer(.(f), data = data, REML = .(reml), control = control))
        eval(call, env)
      } else {
        response <- all.vars(f[[2L]])
        lme4::refit(first, newresp = env$data[[response]])
      }
    }, error = function(e) structure(list(message = conditionMessage(e)), class = "pylme_power_error")),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      warnings <<- c(warnings, sub("\n$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  if (inherits(fit, "pylme_power_error")) return(list(error = fit$message, warnings = warnings))
  list(fit = fit, warnings = warnings)
}

# The rule of models/second_opinion.py for the batch (tolerances `check` come from
# there): a fit flagged non-converged AND singular is refitted with bobyqa; the same
# optimum makes it converged, a better converged optimum replaces it, anything else
# leaves it non-converged. So power() counts and estimates what AllianceModel.fit gives.
pylme_power_second_opinion <- function(env, formula, names, reml, fit, converged, check) {
  keep <- list(fit = fit, converged = converged, note = "")
  if (is.null(check) || converged || !lme4::isSingular(fit)) return(keep)
  env$control <- lme4::lmerControl(optimizer = "bobyqa")
  on.exit(env$control <- lme4::lmerControl())
  other <- pylme_power_one(env, formula, names, reml, NULL)
  if (!is.null(other$error))
    return(list(fit = fit, converged = FALSE, note = "convergence check with bobyqa could not be made"))
  ll <- as.numeric(stats::logLik(fit))
  ll_other <- as.numeric(stats::logLik(other$fit))
  if (ll_other > ll + check[["loglik"]] && pylme_power_converged(other$fit, other$warnings))
    return(list(fit = other$fit, converged = TRUE, note = "bobyqa found a better optimum; its fit is used"))
  a <- lme4::fixef(fit)
  b <- lme4::fixef(other$fit)[names(a)]
  # in standard errors, as fixef_gap: free of the outcome's scale and of where its zero lies
  se <- sqrt(diag(as.matrix(stats::vcov(fit))))
  gap <- max(abs(a - b) / ifelse(is.finite(se) & se > 0, se, pmax(1, abs(a))))
  if (abs(ll_other - ll) <= check[["loglik"]] && is.finite(gap) && gap <= check[["fixef"]])
    return(list(fit = fit, converged = TRUE, note = "convergence checked: bobyqa reached the same optimum"))
  list(fit = fit, converged = FALSE, note = "convergence check with bobyqa: a different optimum")
}

# As the engines judge it (r/lme4.R and engines/_common.make_fit): lme4's own
# convergence check, and no warning that speaks of convergence.
pylme_power_converged <- function(fit, warnings) {
  pylme_lmer_converged(fit) && !any(grepl("converge", warnings, ignore.case = TRUE))
}

# The SD of the random slope `term` in grouping factor `group` (generated names).
pylme_power_slope_sd <- function(fit, term, group) {
  vc <- as.data.frame(lme4::VarCorr(fit))
  row <- vc[vc$grp == group & vc$var1 == term & is.na(vc$var2), , drop = FALSE]
  if (nrow(row) == 0L) return(NA_real_)
  row$sdcor[[1L]]
}
