# Formula text is parsed (str2lang) but never evaluated here: Python checks the
# variables and the functions it calls against the data and an allow-list before
# any model.frame() can run them.
#
# Every walk over a language object uses an explicit stack, never recursion: rpy2
# switches off R's C-stack check, so a recursion as deep as a long formula (a
# 1000-term formula is a 1000-deep `+` chain) crashes the whole process instead of
# raising an error.

pylme_max_nodes <- 20000L   # symbols, constants and calls in one formula
pylme_max_depth <- 200L     # nesting after long `+` chains are balanced
pylme_balance_from <- 32L   # `+` chains longer than this are rebuilt as a balanced tree

pylme_parse_formula <- function(text) {
  expr <- str2lang(text)
  if (!is.call(expr) || !identical(expr[[1L]], as.name("~"))) {
    stop("not a formula (it must contain '~'): ", text, call. = FALSE)
  }
  expr
}

# Pre-order walk: for every node its parent, whether it is a call's head (function
# position), its depth. Children of node i are pushed in reverse so they pop in order.
pylme_lang_nodes <- function(expr, max_nodes = pylme_max_nodes) {
  nodes <- vector("list", 64L)
  head <- logical(64L)
  depth <- integer(64L)
  n <- 0L
  # the stack is a preallocated list with a top index: shrinking a list copies it
  stack <- vector("list", 64L)
  stack_head <- logical(64L)
  stack_depth <- integer(64L)
  stack[1L] <- list(expr)
  stack_depth[1L] <- 1L
  top <- 1L
  while (top > 0L) {
    e <- stack[[top]]
    is_head <- stack_head[top]
    d <- stack_depth[top]
    top <- top - 1L
    n <- n + 1L
    if (n > max_nodes) {
      stop("the formula is too large (more than ", max_nodes, " symbols, numbers and ",
           "operators); fit fewer terms", call. = FALSE)
    }
    if (n > length(nodes)) {
      length(nodes) <- 2L * length(nodes)
      length(head) <- length(nodes)
      length(depth) <- length(nodes)
    }
    nodes[n] <- list(e)
    head[n] <- is_head
    depth[n] <- d
    if (is.call(e)) {
      parts <- as.list(e)
      need <- top + length(parts)
      if (need > length(stack)) {
        size <- max(2L * length(stack), need)
        length(stack) <- size
        length(stack_head) <- size
        length(stack_depth) <- size
      }
      for (k in rev(seq_along(parts))) {
        if (is.symbol(parts[[k]]) && !nzchar(as.character(parts[[k]]))) {
          stop("the formula has an empty argument", call. = FALSE)
        }
        top <- top + 1L
        stack[top] <- list(parts[[k]])
        stack_head[top] <- k == 1L
        stack_depth[top] <- d + 1L
      }
    }
  }
  list(nodes = nodes[seq_len(n)], head = head[seq_len(n)], depth = depth[seq_len(n)])
}

pylme_is_empty_symbol <- function(e) is.name(e) && identical(as.character(e), "")

pylme_formula_info <- function(text) {
  expr <- pylme_parse_formula(text)
  walk <- pylme_lang_nodes(expr)
  calls <- character()
  vars <- character()
  constants <- character()
  for (i in seq_along(walk$nodes)) {
    e <- walk$nodes[[i]]
    if (is.call(e)) {
      h <- e[[1L]]
      calls <- c(calls, if (is.name(h)) as.character(h) else paste(deparse(h), collapse = ""))
    } else if (is.name(e) && !walk$head[i]) {
      if (!pylme_is_empty_symbol(e)) vars <- c(vars, as.character(e))
    } else if (!walk$head[i] && (is.null(e) || is.logical(e) || (is.double(e) && !is.finite(e)))) {
      # TRUE, NULL, NA, Inf, NaN written without backticks are R's constants
      constants <- c(constants, if (is.null(e)) "NULL" else deparse(e))
    }
  }
  two_sided <- length(expr) == 3L
  response <- if (two_sided) pylme_vars(expr[[2L]]) else character()
  rhs <- expr[[length(expr)]]
  groups <- unique(unlist(lapply(pylme_bars(rhs), function(b) pylme_vars(b[[3L]]))))
  if (is.null(groups)) groups <- character()
  list(vars = unique(vars), response = response, calls = unique(calls),
       groups = groups, two_sided = two_sided, constants = unique(constants),
       terms_bound = pylme_terms_bound(walk))
}

# An upper bound on the number of terms (and random-effect columns) R's terms() would
# make of the formula, computed from the parse tree without expanding it, so that
# Python can refuse `a*b*c*...` (2^k terms) or `(a+...+v)^22` before terms() spends
# minutes building them. Uses the pre-order walk of pylme_lang_nodes: a node's
# children follow it, so walking backwards finds every child's bound before its
# parent's. Doubles: the bound may exceed any integer (Inf is fine).
pylme_terms_bound <- function(walk) {
  n <- length(walk$nodes)
  bound <- numeric(n)
  kids <- vector("list", n)
  # a node's children are the next nodes one level deeper, up to the next node at its depth
  parent <- integer(n)
  last_at <- integer(max(walk$depth) + 1L)
  for (i in seq_len(n)) {
    d <- walk$depth[i]
    last_at[d] <- i
    if (d > 1L) parent[i] <- last_at[d - 1L]
  }
  for (i in rev(seq_len(n))) {
    e <- walk$nodes[[i]]
    b <- 1
    if (is.call(e) && is.name(e[[1L]])) {
      args <- kids[[i]]            # bounds of the arguments (the head is not kept)
      op <- as.character(e[[1L]])
      a <- if (length(args) >= 1L) args[[1L]] else 1
      z <- if (length(args) >= 2L) args[[2L]] else 0
      b <- switch(op,
        "~" = , "+" = , "-" = , "(" = a + z,
        "*" = (a + 1) * (z + 1) - 1,
        ":" = , "%in%" = a * max(z, 1),
        "/" = a + a * max(z, 1),
        "|" = , "||" = (a + 1) * (z + 1),
        "^" = {
          k <- e[[3L]]
          k <- if (is.numeric(k) && length(k) == 1L && !is.na(k)) min(max(k, 1), a) else a
          sum(choose(a, seq_len(k)))
        },
        1)
    }
    if (parent[i] > 0L && !walk$head[i]) {
      kids[[parent[i]]] <- c(b, kids[[parent[i]]])  # walking backwards: prepend
    }
    bound[i] <- b
  }
  # a term is a set of atoms (variables, calls such as log(x)): `x*x*...*x` is one term
  ops <- c("~", "+", "-", "*", "/", ":", "%in%", "^", "|", "||", "(")
  atoms <- 0
  symbols <- character()
  for (i in seq_len(n)) {
    e <- walk$nodes[[i]]
    if (is.call(e) && !(is.name(e[[1L]]) && as.character(e[[1L]]) %in% ops)) atoms <- atoms + 1
    if (is.name(e) && !walk$head[i]) symbols <- c(symbols, as.character(e))
  }
  min(bound[1L], 4^(atoms + length(unique(symbols))))
}

# Variables (symbols outside function position) of an expression, in order of appearance.
pylme_vars <- function(expr) {
  walk <- pylme_lang_nodes(expr)
  keep <- vapply(seq_along(walk$nodes), function(i) {
    e <- walk$nodes[[i]]
    is.name(e) && !walk$head[i] && !pylme_is_empty_symbol(e)
  }, logical(1L))
  unique(vapply(walk$nodes[keep], as.character, character(1L)))
}

# The `g` sides of (x | g) terms, found without lme4 so nlme-style "~ 1 | g" works too;
# a bar term is not searched further.
pylme_bars <- function(e) {
  out <- list()
  stack <- list(e)
  while (length(stack) > 0L) {
    top <- stack[[length(stack)]]
    stack[[length(stack)]] <- NULL
    if (!is.call(top)) next
    h <- top[[1L]]
    if (identical(h, as.name("|")) || identical(h, as.name("||"))) {
      out[[length(out) + 1L]] <- top
      next
    }
    args <- as.list(top)[-1L]
    for (k in rev(seq_along(args))) stack[[length(stack) + 1L]] <- args[[k]]
  }
  out
}

# Operands of a left-nested chain a + b + c (binary `+` only), found along the left spine.
pylme_plus_operands <- function(e) {
  right <- list()
  while (is.call(e) && identical(e[[1L]], as.name("+")) && length(e) == 3L) {
    right[[length(right) + 1L]] <- e[[3L]]
    e <- e[[2L]]
  }
  c(list(e), rev(right))
}

# The same operands as a balanced tree of `+`, left to right: R's terms() treats `+` as
# associative and keeps the order of appearance, so the model is the same one, but no
# walk (ours, lme4's findbars, glmmTMB's) has to recurse once per term.
pylme_balanced_plus <- function(operands) {
  while (length(operands) > 1L) {
    n <- length(operands)
    pairs <- vector("list", (n + 1L) %/% 2L)
    for (k in seq_along(pairs)) {
      i <- 2L * k - 1L
      pairs[[k]] <- if (i < n) call("+", operands[[i]], operands[[i + 1L]]) else operands[[i]]
    }
    operands <- pairs
  }
  operands[[1L]]
}

# Rewrite an expression symbol by symbol: each variable named in `from` becomes the
# symbol in `to` (function names are left alone), and long `+` chains are balanced.
# Post-order rebuild with an explicit stack of frames (node, rebuilt children so far).
pylme_rename_lang <- function(expr, from = character(), to = character()) {
  lookup <- stats::setNames(as.character(to), as.character(from))
  leaf <- function(e) {
    if (is.name(e)) {
      name <- as.character(e)
      if (nzchar(name) && name %in% names(lookup)) return(as.name(lookup[[name]]))
    }
    e
  }
  prepare <- function(e) {
    if (is.call(e) && identical(e[[1L]], as.name("+")) && length(e) == 3L) {
      ops <- pylme_plus_operands(e)
      if (length(ops) > pylme_balance_from) return(pylme_balanced_plus(ops))
    }
    e
  }
  if (!is.call(expr)) return(leaf(expr))
  expr <- prepare(expr)
  stack <- list(list(node = expr, parts = as.list(expr), done = list(), depth = 1L))
  result <- NULL
  while (length(stack) > 0L) {
    top <- length(stack)
    frame <- stack[[top]]
    k <- length(frame$done) + 1L
    if (k > length(frame$parts)) {
      rebuilt <- as.call(frame$done)
      names(rebuilt) <- names(frame$node)
      stack[[top]] <- NULL
      if (length(stack) == 0L) {
        result <- rebuilt
      } else {
        stack[[top - 1L]]$done[length(stack[[top - 1L]]$done) + 1L] <- list(rebuilt)
      }
      next
    }
    part <- frame$parts[[k]]
    if (k == 1L || !is.call(part)) {
      if (pylme_is_empty_symbol(part)) stop("the formula has an empty argument", call. = FALSE)
      stack[[top]]$done[k] <- list(if (k == 1L) part else leaf(part))
    } else {
      if (frame$depth >= pylme_max_depth) {
        stop("the formula is nested too deeply (more than ", pylme_max_depth, " levels)",
             call. = FALSE)
      }
      part <- prepare(part)
      stack[[top + 1L]] <- list(node = part, parts = as.list(part), done = list(),
                                depth = frame$depth + 1L)
    }
  }
  result
}

# A formula object from text, renamed (see pylme_rename_lang), whose environment is the
# fit's own environment.
pylme_formula <- function(text, env, names = NULL) {
  expr <- pylme_rename_lang(pylme_parse_formula(text), names$from, names$to)
  f <- stats::as.formula(expr, env = env)
  environment(f) <- env
  f
}

# A fit carries the renaming it was made with (attribute "pylme_names"), so R code that
# receives a user's column name (emmeans' var, a moderator) finds the name inside the fit.
pylme_tag_names <- function(fit, names) {
  attr(fit, "pylme_names") <- names
  fit
}

pylme_fit_name <- function(fit, name) {
  names <- attr(fit, "pylme_names")
  if (is.null(name) || is.null(names)) return(name)
  k <- match(name, names$from)
  if (is.na(k)) name else names$to[[k]]
}

# Refuse a fixed-effects design whose columns are not identified (a constant column
# next to the intercept, a column that is a sum of others): lme4 would drop it with a
# message, nlme stop in its algebra, glmmTMB keep both halves and report convergence.
# Uses the rows every model column has, as the fit will.
pylme_check_fixed_rank <- function(fixed, data) {
  fixed <- lme4::nobars(fixed)
  if (length(fixed) == 3L) fixed <- fixed[-2L]  # the response is not part of the design
  rows <- stats::complete.cases(data)
  # unused levels are dropped, as lmer, lme and glmmTMB drop them: an empty level is not collinear
  mf <- stats::model.frame(fixed, data = data[rows, , drop = FALSE], na.action = stats::na.pass,
                          drop.unused.levels = TRUE)
  if (pylme_sparse_full_rank(fixed, mf)) return(character())
  # possibly deficient: the dense pivoted QR names the aliased columns as lme4 would
  X <- stats::model.matrix(fixed, mf)
  if (ncol(X) == 0L) return(character())
  q <- qr(X, tol = 1e-7)
  if (q$rank >= ncol(X)) return(character())
  colnames(X)[q$pivot[seq.int(q$rank + 1L, ncol(X))]]
}

# TRUE when the sparse QR of the fixed-effects design shows it clearly of full rank.
# The dense qr() of a 12,000 x 1,500 design (a 1,500-level factor) takes ~20 s of CPU
# inside LINPACK, where Ctrl-C is never checked; the sparse QR (Matrix, CSparse with a
# fill-reducing column order) takes milliseconds. Every |R_jj| relative to its
# column's norm must exceed 1e-4 (1,000 times qr()'s tolerance): then no column is
# within qr()'s tolerance of the others' span. Anything closer, a structurally
# deficient or empty design, or a term sparse.model.matrix cannot build gives FALSE,
# and the dense check decides as before.
pylme_sparse_full_rank <- function(fixed, mf) {
  tryCatch({
    X <- withCallingHandlers(
      Matrix::sparse.model.matrix(fixed, mf),
      warning = function(w) invokeRestart("muffleWarning"))
    p <- ncol(X)
    if (p == 0L || nrow(X) < p) return(FALSE)
    norms <- sqrt(Matrix::colSums(X^2))
    if (any(!is.finite(norms)) || any(norms == 0)) return(FALSE)
    deficient <- FALSE
    q <- withCallingHandlers(Matrix::qr(X), warning = function(w) {
      deficient <<- TRUE  # "structurally rank deficient": rows of zeros were added
      invokeRestart("muffleWarning")
    })
    if (deficient) return(FALSE)
    r <- abs(Matrix::diag(Matrix::qrR(q, backPermute = FALSE)))
    rel <- r / norms[q@q + 1L]
    length(rel) == p && all(is.finite(rel)) && all(rel > 1e-4)
  }, error = function(e) FALSE)
}
