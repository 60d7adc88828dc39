# CI stand-in for the official `mariadb` image (no registry in CI): MariaDB from Debian
# bookworm on the debootstrapped python:3.11-slim stand-in. It honours what
# docker-compose.yml relies on: MARIADB_*/MYSQL_* ROOT_PASSWORD, DATABASE, USER, PASSWORD;
# `--option` arguments passed to mariadbd; data in /var/lib/mysql; `mariadb-admin ping`
# over TCP only once initialisation is done. Built by scripts/docker-base-images.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mariadb-server \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql \
 && mkdir -p /var/lib/mysql /run/mysqld \
 && chown mysql:mysql /var/lib/mysql /run/mysqld
COPY mariadb-docker.cnf /etc/mysql/mariadb.conf.d/99-docker.cnf
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["mariadbd"]
