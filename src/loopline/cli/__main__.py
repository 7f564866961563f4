"""``python -m loopline.cli``: the ``loopline`` command without its console script."""

from loopline.cli import main

if __name__ == "__main__":
    main()
