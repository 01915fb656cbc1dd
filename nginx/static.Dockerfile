# nginx with the app's static files inside, for deployments where nginx and
# the web replicas share no volume (docker/stack.yml: they may run on
# different machines). Built from the two images already made, so the files
# are exactly those of the web image's collectstatic:
#
#   docker build -f nginx/static.Dockerfile --build-arg WEB_IMAGE=usbills-web:1.2 \
#       --build-arg NGINX_IMAGE=usbills-nginx:1.2 -t usbills-nginx-static:1.2 nginx
#
# Rebuild it with every web image whose static files changed, and update
# nginx with web: hashed names change with the content.
ARG WEB_IMAGE=usbills-web:latest
ARG NGINX_IMAGE=usbills-nginx:latest

FROM ${WEB_IMAGE} AS web

FROM ${NGINX_IMAGE}
COPY --from=web /app/staticfiles/ /srv/static/
