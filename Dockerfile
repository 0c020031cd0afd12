# One image for the web console, the Celery worker and the scheduler: docker-compose.yml
# runs it with a different command for each.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    A4C_VAR_DIR=/var/lib/a4c-backup

# python-ldap (django-auth-ldap) builds against OpenLDAP's and Cyrus SASL's headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libldap2-dev libsasl2-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
# Installed in place (-e): the settings find templates/, static files and the migrations next
# to the packages in /app, which a plain `pip install .` would leave out of site-packages.
RUN pip install -e . \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

EXPOSE 8000
# waitress (a4c_backup/serve.py): slow or idle clients hold a socket, never a worker.
CMD ["python", "-m", "a4c_backup.serve", "--host", "0.0.0.0", "--port", "8000"]
