# Formula text is parsed (str2lang) but never evaluated here: Python checks the
# variables and the functions it calls against the data and an allow-list before
# any model.frame() can run them.

pylme_formula_info <- function(text) {
  expr <- str2lang(text)
  if (!is.call(expr) || !identical(expr[[1L]], as.name("~"))) {
    stop("not a formula (it must contain '~'): ", text, call. = FALSE)
  }
  calls <- character()
  walk <- function(e) {
    if (is.call(e)) {
      head <- e[[1L]]
      calls <<- c(calls, if (is.name(head)) as.character(head) else paste(deparse(head), collapse = ""))
      for (arg in as.list(e)[-1L]) if (!missing(arg)) walk(arg)
    }
  }
  walk(expr)
  two_sided <- length(expr) == 3L
  response <- if (two_sided) all.vars(expr[[2L]]) else character()
  rhs <- expr[[length(expr)]]
  groups <- unique(unlist(lapply(pylme_bars(rhs), function(b) all.vars(b[[3L]]))))
  if (is.null(groups)) groups <- character()
  list(vars = all.vars(expr), response = response, calls = unique(calls),
       groups = groups, two_sided = two_sided)
}

# The `g` sides of (x | g) terms, found without lme4 so nlme-style "~ 1 | g" works too.
pylme_bars <- function(e) {
  if (!is.call(e)) return(list())
  head <- e[[1L]]
  if (identical(head, as.name("|")) || identical(head, as.name("||"))) return(list(e))
  unlist(lapply(as.list(e)[-1L], pylme_bars), recursive = FALSE)
}

# Build a formula object whose environment is the fit's own environment.
pylme_formula <- function(text, env) {
  f <- stats::as.formula(str2lang(text), env = env)
  environment(f) <- env
  f
}
