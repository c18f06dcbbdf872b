#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django
    from django.core.management import execute_from_command_line

    from config.database import NEEDS_TABLES, ensure_migrated

    if len(sys.argv) > 1 and sys.argv[1] in NEEDS_TABLES:
        django.setup()
        ensure_migrated()
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
