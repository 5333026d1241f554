"""Fill the `${NAME}` placeholders of a bpsync config file from the environment.

    python render_config.py TEMPLATE OUTPUT [--owner UID:GID]

A placeholder is a YAML string value that is exactly `${NAME}`; it is replaced by the value of the
environment variable NAME, whatever characters that holds (the output is written by a YAML dumper,
never by text substitution). A missing or empty variable is an error naming it. OUTPUT is written
with mode 0400 and, with --owner, given to that user (run as root for that).

The storage keys of the service configuration are read from the file only, so this is how the
compose stack keeps S3 credentials in .env; every other secret is passed as an environment variable.
"""

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariable(Exception):
    pass


def placeholders(tree: object) -> set[str]:
    """The variable names of every placeholder in a loaded YAML tree."""
    if isinstance(tree, Mapping):
        return set().union(*(placeholders(value) for value in tree.values()))
    if isinstance(tree, list):
        return set().union(*(placeholders(item) for item in tree))
    if isinstance(tree, str):
        match = PLACEHOLDER.fullmatch(tree)
        return {match.group(1)} if match else set()
    return set()


def fill(tree: object, environ: Mapping[str, str]) -> object:
    if isinstance(tree, Mapping):
        return {key: fill(value, environ) for key, value in tree.items()}
    if isinstance(tree, list):
        return [fill(item, environ) for item in tree]
    if isinstance(tree, str):
        match = PLACEHOLDER.fullmatch(tree)
        if match:
            value = environ.get(match.group(1))
            if not value:
                raise MissingVariable(match.group(1))
            return value
    return tree


def render(template: str, environ: Mapping[str, str]) -> str:
    return yaml.safe_dump(fill(yaml.safe_load(template), environ), sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--owner", help="UID:GID to give the output to")
    arguments = parser.parse_args(argv)
    try:
        text = render(arguments.template.read_text(), os.environ)
    except MissingVariable as error:
        print(f"render_config: {arguments.template}: environment variable {error} is not set", file=sys.stderr)
        return 2
    output: Path = arguments.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(text)
    if arguments.owner:
        uid, gid = (int(part) for part in arguments.owner.split(":"))
        os.chown(output, uid, gid)
    print(f"render_config: wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
