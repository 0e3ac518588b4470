"""The .net grammar (netevo.lark), the parser into spec IR, and file loading with imports."""
