# calmail for production: gunicorn serves the web app on port 8000; the same image runs
# the Celery worker and beat (docker-compose.yml shows all three).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MEDIA_ROOT=/data/media

# WeasyPrint (PDF reports) renders with Pango; DejaVu gives it fonts with umlauts.
# The same packages as .ci/run installs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

# A writable home: gunicorn puts its control socket there (~/.gunicorn/).
RUN groupadd --system calmail \
    && useradd --system --gid calmail --create-home --home-dir /home/calmail \
        --shell /usr/sbin/nologin calmail

WORKDIR /app

# The dependencies first, in a layer of their own, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# Editable, so that settings find templates/, static/ and locale/ beside the code in /app.
RUN pip install --no-deps -e .

# Static files are collected into the image (var/static, served by WhiteNoise). Production
# settings refuse to load without keys, so this one step gets keys that exist only inside it.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    FERNET_KEYS="$(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')" \
    python manage.py collectstatic --noinput \
    && mkdir -p /data/media /data/beat \
    && chown calmail:calmail /app/var /data/media /data/beat

USER calmail
EXPOSE 8000
CMD ["gunicorn", "calmail.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
