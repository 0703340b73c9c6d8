"""Built-in exercise types, strategies and safety rules: ordinary plugins."""
