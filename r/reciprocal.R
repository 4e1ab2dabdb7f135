# Reciprocal alliance-outcome dynamics in lavaan (issue 19): the random-intercept
# cross-lagged panel model (RI-CLPM, Hamaker et al. 2015) and the ML-SEM dynamic panel
# model (DPM, Allison, Williams & Moral-Benito 2017).
#
# The model syntax is built HERE from a validated wave count and fixed variable names
# (a1..aW alliance, y1..yW outcome): no user text ever reaches it. Python sends the wide
# data already centred and scaled (one mean and SD per series, the same for every wave,
# so equality constraints over waves stay meaningful).
#
# Labels of the time-invariant within-person paths:
#   pa  alliance -> alliance   pya outcome -> alliance
#   py  outcome -> outcome     pay alliance -> outcome

pylme_reciprocal_check_waves <- function(waves) {
  waves <- as.integer(waves)
  if (length(waves) != 1L || is.na(waves) || waves < 3L || waves > 40L) {
    stop("the number of waves must be a single integer between 3 and 40")
  }
  waves
}

pylme_reciprocal_riclpm_syntax <- function(waves, slopes = FALSE, zero_slopes = character()) {
  W <- pylme_reciprocal_check_waves(waves)
  t <- seq_len(W)
  a <- paste0("a", t)
  y <- paste0("y", t)
  lines <- c(
    paste0("RIa =~ ", paste0("1*", a, collapse = " + ")),
    paste0("RIy =~ ", paste0("1*", y, collapse = " + ")),
    # the within-person parts: one latent per observed score, no measurement error
    paste0("wa", t, " =~ 1*", a),
    paste0("wy", t, " =~ 1*", y),
    paste0(a, " ~~ 0*", a),
    paste0(y, " ~~ 0*", y),
    # time-invariant lagged paths (labels shared over waves)
    paste0("wa", t[-1], " ~ pa*wa", t[-W], " + pya*wy", t[-W]),
    paste0("wy", t[-1], " ~ py*wy", t[-W], " + pay*wa", t[-W]),
    # first wave: free variances and covariance; later waves: equal innovation
    # (residual) variances and covariance
    "wa1 ~~ wa1", "wy1 ~~ wy1", "wa1 ~~ wy1",
    paste0("wa", t[-1], " ~~ va*wa", t[-1]),
    paste0("wy", t[-1], " ~~ vy*wy", t[-1]),
    paste0("wa", t[-1], " ~~ cw*wy", t[-1]),
    "RIa ~~ RIa", "RIy ~~ RIy", "RIa ~~ RIy",
    "RIa ~~ 0*wa1", "RIa ~~ 0*wy1", "RIy ~~ 0*wa1", "RIy ~~ 0*wy1"
  )
  if (isTRUE(slopes)) {
    load <- paste0(t - 1L, "*")
    lines <- c(lines,
      paste0("Sa =~ ", paste0(load, a, collapse = " + ")),
      paste0("Sy =~ ", paste0(load, y, collapse = " + ")),
      "Sa ~~ 0*wa1", "Sa ~~ 0*wy1", "Sy ~~ 0*wa1", "Sy ~~ 0*wy1")
    # a slope whose variance came out negative is refitted as fixed: no variance and no
    # covariances with the other patient-level terms
    zero <- intersect(zero_slopes, c("Sa", "Sy"))
    pairs <- list(c("Sa", "Sa"), c("Sy", "Sy"), c("Sa", "Sy"), c("RIa", "Sa"), c("RIa", "Sy"),
                  c("RIy", "Sa"), c("RIy", "Sy"))
    for (p in pairs) {
      fixed <- any(p %in% zero)
      lines <- c(lines, paste0(p[1], " ~~ ", if (fixed) "0*" else "", p[2]))
    }
  }
  paste(lines, collapse = "\n")
}

pylme_reciprocal_dpm_syntax <- function(waves) {
  W <- pylme_reciprocal_check_waves(waves)
  t <- seq_len(W)
  a <- paste0("a", t)
  y <- paste0("y", t)
  lines <- c(
    # the patient's fixed effects load on waves 2..W; wave 1 is predetermined
    paste0("Fa =~ ", paste0("1*", a[-1], collapse = " + ")),
    paste0("Fy =~ ", paste0("1*", y[-1], collapse = " + ")),
    paste0(a[-1], " ~ pa*", a[-W], " + pya*", y[-W]),
    paste0(y[-1], " ~ py*", y[-W], " + pay*", a[-W]),
    # error variances free per wave (the DPM's default), contemporaneous covariance
    paste0(a[-1], " ~~ ", a[-1]),
    paste0(y[-1], " ~~ ", y[-1]),
    paste0(a[-1], " ~~ ", y[-1]),
    "Fa ~~ Fa", "Fy ~~ Fy", "Fa ~~ Fy",
    "a1 ~~ a1", "y1 ~~ y1", "a1 ~~ y1",
    "Fa ~~ a1", "Fa ~~ y1", "Fy ~~ a1", "Fy ~~ y1"
  )
  paste(lines, collapse = "\n")
}

# Fit one model. `data` holds exactly a1..aW, y1..yW (centred and scaled).
pylme_reciprocal_fit <- function(data, waves, method = c("riclpm", "dpm"), slopes = FALSE,
                                 zero_slopes = character(), fit_measures = FALSE) {
  method <- match.arg(method)
  W <- pylme_reciprocal_check_waves(waves)
  expected <- c(paste0("a", seq_len(W)), paste0("y", seq_len(W)))
  if (!setequal(names(data), expected)) {
    stop("the wide data must hold exactly the columns a1..aW and y1..yW")
  }
  syntax <- if (method == "riclpm") {
    pylme_reciprocal_riclpm_syntax(W, slopes = slopes, zero_slopes = zero_slopes)
  } else {
    pylme_reciprocal_dpm_syntax(W)
  }
  quick <- !isTRUE(fit_measures)
  # observed information from the h1 (saturated, EM) moments: the same standard errors
  # as the numerical Hessian on the benchmark data (to 3 digits) at half the CPU
  # lavaan() adds nothing on its own (every variance is in the syntax); wave means free
  # (int.ov.free) absorb the common trajectory of each series
  fit <- lavaan::lavaan(syntax, data = data, missing = "ml", meanstructure = TRUE,
                        int.ov.free = TRUE, int.lv.free = FALSE, fixed.x = FALSE,
                        h1 = !quick, baseline = !quick, test = if (quick) "none" else "standard",
                        se = "standard", observed.information = "h1")
  list(fit = fit, syntax = syntax, summary = pylme_reciprocal_summary(fit, method))
}

pylme_reciprocal_summary <- function(fit, method) {
  pe <- lavaan::parameterEstimates(fit, ci = FALSE, remove.eq = TRUE, remove.ineq = TRUE,
                                   remove.def = TRUE)
  keep <- pe$op %in% c("~", "~~") & !(pe$op == "~~" & pe$est == 0 & is.na(pe$se))
  pe <- pe[keep, c("lhs", "op", "rhs", "label", "est", "se", "pvalue")]
  pe$se[is.na(pe$se)] <- NA_real_
  labels <- c("pa", "pya", "py", "pay")
  vc <- lavaan::lavInspect(fit, "vcov")
  idx <- match(labels, colnames(vc))
  if (anyNA(idx)) {
    paths_vcov <- rep(NA_real_, 16L)
  } else {
    paths_vcov <- as.vector(vc[idx, idx, drop = FALSE])
  }
  converged <- isTRUE(lavaan::lavInspect(fit, "converged"))
  iterations <- as.integer(lavaan::lavInspect(fit, "iterations"))
  # admissibility: negative variances, non-positive-definite latent covariance
  variances <- pe[pe$op == "~~" & pe$lhs == pe$rhs, ]
  negative <- variances$lhs[variances$est < 0]
  lv <- tryCatch(lavaan::lavInspect(fit, "cov.lv"), error = function(e) NULL)
  if (!is.null(lv) && length(lv) > 0L) {
    # a slope fixed at 0 on refit (zero_slopes) is a zero row by design, not a defect
    keep_lv <- diag(lv) != 0
    lv <- lv[keep_lv, keep_lv, drop = FALSE]
  }
  min_eigen <- if (is.null(lv) || length(lv) == 0L) NA_real_ else
    min(eigen(lv, symmetric = TRUE, only.values = TRUE)$values)
  list(params = pe, paths_vcov = paths_vcov, converged = converged,
       iterations = iterations, negative = as.character(negative),
       min_eigen_lv = as.numeric(min_eigen),
       n_used = as.integer(lavaan::lavInspect(fit, "nobs")),
       loglik = tryCatch(as.numeric(fit@loglik$loglik), error = function(e) NA_real_))
}

pylme_reciprocal_fit_measures <- function(fit) {
  m <- lavaan::fitMeasures(fit, c("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr"))
  as.list(m)
}
