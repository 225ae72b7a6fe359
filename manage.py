#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured
    from django.core.management import ManagementUtility

    utility = ManagementUtility(sys.argv)
    try:
        utility.execute()
    except (ImproperlyConfigured, AppRegistryNotReady) as exc:
        # Django keeps a settings error aside and goes on without loading the apps; a command
        # that needs them then fails with "Models aren't loaded yet". Report the cause instead.
        sys.exit(f"Configuration error: {utility.settings_exception or exc}")


if __name__ == "__main__":
    main()
