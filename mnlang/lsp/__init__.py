"""The language server behind `mnc lsp`: diagnostics, hover, definitions, completion,
document symbols and formatting for `.mn` files."""
