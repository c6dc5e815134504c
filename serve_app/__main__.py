"""`python -m serve_app [--address ADDR]`: the HTTP service in the foreground (`launcher.main`)."""

from launcher.main import main

if __name__ == "__main__":
    main()
