# The R work of pylme_alliance's analyze() on the bundled trial, written as plain R.
#
#   Rscript benchmarks/analyze_equivalent.R <record-dir> <reps>
#
# <record-dir> holds what benchmarks/analyze.py recorded from one analyze() run, in call
# order: for every fit its data frame, its formula (as R objects) and its options; for
# every interval, contrast, prediction and random-effects table the fit it was asked of.
# This script replays the same work with the stock functions a hand-written analysis
# would call (lmerTest::lmer + summary with Satterthwaite df, VarCorr, logLik/AIC/BIC,
# nlme::lme + summary, confint(method = "profile") of the slope SD, lmerTest::contest1D
# for the simple slopes, ranef(condVar = TRUE), predict, fitted/residuals) and prints
# one JSON line: the CPU time (user + system) of each rep and their parts. Reading the
# records and loading the packages are not timed.
args <- commandArgs(trailingOnly = TRUE)
dir <- args[[1]]
reps <- as.integer(args[[2]])
suppressPackageStartupMessages({library(lme4); library(lmerTest); library(nlme)})

files <- sort(list.files(dir, pattern = "[.]rds$", full.names = TRUE))
records <- lapply(files, readRDS)

cpu <- function(expr) {
  t <- system.time(expr, gcFirst = FALSE)  # a gc() before each of ~140 calls would dwarf them
  unname(t[["user.self"]] + t[["sys.self"]])
}

lmer_fit <- function(r) {
  control <- do.call(lme4::lmerControl, r$control)
  fun <- if (identical(r$ddf, "none")) lme4::lmer else lmerTest::lmer
  fit <- fun(r$formula, data = r$data, REML = r$reml, control = control)
  method <- if (identical(r$ddf, "kenward-roger")) "Kenward-Roger" else "Satterthwaite"
  co <- if (inherits(fit, "lmerModLmerTest")) summary(fit, ddf = method)$coefficients else summary(fit)$coefficients
  vc <- as.data.frame(lme4::VarCorr(fit), order = "lower.tri")
  ll <- stats::logLik(fit)
  stats <- c(stats::AIC(fit), stats::BIC(fit), lme4::isSingular(fit), stats::vcov(fit)[1, 1])
  fit
}

lme_fit <- function(r) {
  control <- do.call(nlme::lmeControl, c(r$control, list(returnObject = TRUE)))
  fit <- nlme::lme(fixed = r$fixed, data = r$data, random = r$random, correlation = r$correlation,
                   method = r$method, control = control, na.action = stats::na.omit)
  tt <- summary(fit)$tTable
  ll <- stats::logLik(fit)
  stats <- c(stats::AIC(fit), stats::BIC(fit), stats::vcov(fit)[1, 1])
  vc <- nlme::VarCorr(fit)
  fit
}

one_rep <- function() {
  fits <- list()
  parts <- c(lmer = 0, lme = 0, interval = 0, contrast = 0, other = 0)
  for (r in records) {
    if (r$kind == "lmer") {
      parts[["lmer"]] <- parts[["lmer"]] + cpu(fits[[as.character(r$id)]] <- lmer_fit(r))
    } else if (r$kind == "lme") {
      parts[["lme"]] <- parts[["lme"]] + cpu(fits[[as.character(r$id)]] <- lme_fit(r))
    } else {
      fit <- fits[[as.character(r$fit)]]
      if (r$kind == "sd_interval") {
        parts[["interval"]] <- parts[["interval"]] + cpu(
          ci <- tryCatch(stats::confint(fit, parm = r$name, method = "profile", level = r$level,
                                        oldNames = FALSE, quiet = TRUE), error = function(e) NULL))
      } else if (r$kind == "contrast") {
        parts[["contrast"]] <- parts[["contrast"]] + cpu(
          ct <- lmerTest::contest1D(fit, r$L, ddf = "Satterthwaite"))
      } else if (r$kind == "ran_vals") {
        parts[["other"]] <- parts[["other"]] + cpu(re <- lme4::ranef(fit, condVar = TRUE))
      } else if (r$kind == "predict") {
        parts[["other"]] <- parts[["other"]] + cpu(
          p <- stats::predict(fit, newdata = r$newdata, re.form = if (isTRUE(r$include_random)) NULL else NA,
                              allow.new.levels = TRUE))
      } else if (r$kind == "augment") {
        parts[["other"]] <- parts[["other"]] + cpu(fr <- list(stats::fitted(fit), stats::residuals(fit)))
      }
    }
  }
  parts
}

invisible(suppressWarnings(suppressMessages(one_rep())))  # warm-up: code paths loaded, as after analyze()'s first fit
times <- list()
for (k in seq_len(reps)) {
  parts <- NULL
  total <- cpu(parts <- suppressWarnings(suppressMessages(one_rep())))
  times[[k]] <- c(total = total, parts)
}
cat(sprintf('{"n_records": %d, "reps": [%s]}\n', length(records),
            paste(vapply(times, function(t) sprintf('{%s}', paste(sprintf('"%s": %.4f', names(t), t), collapse = ", ")),
                         ""), collapse = ", ")))
