"""The language server behind `mnc lsp`: diagnostics, hover, definitions, references,
rename, completion, document symbols and formatting for `.mn` files."""
