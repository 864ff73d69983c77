"""Problem definitions: what is solved (math, data, exact solutions). Imports neither solvers nor sciml."""
