# The R side of the bridge: one entry point that runs a function of this
# environment and brings back its value together with every warning and message it
# raised, or R's error. Python calls only functions defined in these r/*.R files,
# always with R objects as arguments, never with R source text.

pylme_call <- function(fun, args) {
  warnings <- character()
  messages <- character()
  outcome <- withCallingHandlers(
    tryCatch(
      list(ok = TRUE, value = do.call(fun, args, quote = TRUE)),
      error = function(e) {
        call <- conditionCall(e)
        list(ok = FALSE, message = conditionMessage(e),
             call = if (is.null(call)) NULL else pylme_short_deparse(call))
      },
      # Ctrl-C: Python set R_interrupts_pending (bridge/interrupt.py); catching the
      # condition here unwinds the call cleanly and tells Python to raise
      # KeyboardInterrupt, instead of R jumping to its top level inside rpy2
      interrupt = function(i) list(ok = FALSE, interrupted = TRUE)
    ),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      messages <<- c(messages, sub("\n$", "", conditionMessage(m)))
      invokeRestart("muffleMessage")
    }
  )
  outcome$warnings <- warnings
  outcome$messages <- messages
  outcome
}

# A call can hold a whole data set when R built it with do.call; keep error text short.
pylme_short_deparse <- function(call) {
  fun <- call[[1L]]
  if (is.name(fun) || (is.call(fun) && identical(fun[[1L]], as.name("::")))) {
    paste0(paste(deparse(fun, nlines = 1L), collapse = ""), "(...)")
  } else {
    "<call>"
  }
}

# Bind a converted object to a name in a fresh environment: fits evaluate their call
# there, so the stored model call names the data instead of embedding it.
pylme_new_env <- function(parent) new.env(parent = parent)

pylme_assign <- function(env, name, value) {
  assign(name, value, envir = env)
  invisible(NULL)
}
