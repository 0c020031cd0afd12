# One image for the web console, the Celery worker and the scheduler: docker-compose.yml
# runs it with a different command for each.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    A4C_VAR_DIR=/var/lib/a4c-backup

WORKDIR /app
COPY . .
# Installed in place (-e): the settings find templates/, static files and the migrations next
# to the packages in /app, which a plain `pip install .` would leave out of site-packages.
RUN pip install -e . \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput

EXPOSE 8000
CMD ["gunicorn", "a4c_backup.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2"]
