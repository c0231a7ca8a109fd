#!/bin/sh
# Demo TLS material for docker-compose.tls.yml: a CA and a certificate for modelmon (the
# compose service name, localhost and 127.0.0.1) signed by it, valid for a year. Demo only:
# real deployments take their certificates from their own PKI (cert-manager in Kubernetes).
#
#   sh deploy/compose/make-demo-certs.sh deploy/compose/tls
set -eu
out=${1:-deploy/compose/tls}
mkdir -p "$out"
cd "$out"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086  # $ec is several arguments
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 365 -subj /CN=modelmon-demo-ca 2>/dev/null
# shellcheck disable=SC2086
openssl req $ec -keyout modelmon.key -out modelmon.csr -subj /CN=modelmon 2>/dev/null
printf 'subjectAltName=DNS:modelmon,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' \
  >modelmon.ext
openssl x509 -req -in modelmon.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
  -out modelmon.crt -extfile modelmon.ext 2>/dev/null
rm -f modelmon.csr modelmon.ext ca.srl
# The container runs as uid 10001 and must read the key it is given (demo only).
chmod 644 modelmon.key
echo "demo certificates in $out: ca.crt, modelmon.crt, modelmon.key"
