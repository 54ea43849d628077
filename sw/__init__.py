"""HASP software: golden model, front end, compiler, runtime."""
