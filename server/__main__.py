"""`python -m server`: the same as `daozhen serve`."""

from server import serve

if __name__ == "__main__":
    serve()
