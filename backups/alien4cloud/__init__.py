"""The only door to Alien4Cloud's REST API: sign-in, maintenance mode and health.

Imported as ``from backups.alien4cloud import client as alien4cloud``. Nothing else in the
project speaks HTTP to Alien4Cloud; what crosses this door are the dataclasses of client.py
and the Alien4CloudError family of backups/errors.py.
"""
