#!/usr/bin/env bash
# Regenerates fixtures/certs with OpenSSL: every certificate format an admin may export, plus the
# bad inputs. Records OpenSSL's own SHA-1 fingerprint, dates and DER Base64 of each good fixture in
# fixtures/certs/expected.tsv, so the tests cross-check the loader against OpenSSL.
# Usage: scripts/gen-fixtures.sh   (needs openssl 3 with the legacy provider for RC2 PFX files)
set -euo pipefail
cd "$(dirname "$0")/../fixtures/certs"
rm -f ./*.pem ./*.cer ./*.der ./*.b64 ./*.pfx ./*.key ./*.bin ./*.tsv ./*.txt ./*.srl ./*.cnf
PW='Passw0rd!'
export PW

cat > ext.cnf <<'CNF'
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:sfb.contoso.com, DNS:*.contoso.com, DNS:lyncdiscover.contoso.com
[nodigsig]
basicConstraints = CA:FALSE
keyUsage = critical, keyEncipherment
subjectAltName = DNS:sfb.contoso.com
[plain]
basicConstraints = CA:FALSE
subjectAltName = DNS:webext.fabrikam.com
CNF

q() { "$@" 2>/tmp/gen-fixtures.err || { cat /tmp/gen-fixtures.err >&2; return 1; }; }

# A test CA and the OAuthTokenIssuer leaf it signs (valid 100 years, so the fixtures do not age).
q openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 36500 -subj "/CN=Contoso Test Root CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -sha256
q openssl req -new -newkey rsa:2048 -nodes -keyout sfb.key -out sfb.csr -subj "/CN=sfb.contoso.com/O=Contoso/C=US"
q openssl x509 -req -in sfb.csr -CA ca.pem -CAkey ca.key -set_serial 0x1001 -days 36500 -sha256 -extfile ext.cnf -extensions leaf -out sfb.pem
rm -f sfb.csr

# The same certificate in every public format.
openssl x509 -in sfb.pem -outform DER -out sfb.der
sed 's/$/\r/' sfb.pem > sfb-crlf.cer                                   # Windows "Base-64 encoded X.509"
grep -v -- '-----' sfb.pem | sed 's/$/\r/' > sfb-bare.b64               # Base64 without armour, CRLF
openssl base64 -A -in sfb.der > sfb-oneline.b64                         # one line, no newline
cat ca.pem sfb.pem > sfb-chain-ca-first.pem                             # leaf second: must still be picked
cat sfb.key sfb.pem ca.pem > sfb-key-cert-chain.pem                     # key first
q openssl pkey -in sfb.key -traditional -out sfb-pkcs1.key
cat sfb-pkcs1.key sfb.pem > sfb-pkcs1-key-cert.pem                      # "RSA PRIVATE KEY"

# PFX: modern (AES-256-CBC, PBKDF2, SHA-256 MAC), legacy 3DES, legacy RC2-40, empty password,
# with the chain (several bags), and a certificate-only PFX.
openssl pkcs12 -export -in sfb.pem -inkey sfb.key -out sfb-aes.pfx -passout env:PW
openssl pkcs12 -export -in sfb.pem -inkey sfb.key -out sfb-3des.pfx -passout env:PW -certpbe PBE-SHA1-3DES -keypbe PBE-SHA1-3DES -macalg sha1
openssl pkcs12 -export -legacy -in sfb.pem -inkey sfb.key -out sfb-rc2.pfx -passout env:PW
openssl pkcs12 -export -in sfb.pem -inkey sfb.key -out sfb-empty-password.pfx -passout pass:
openssl pkcs12 -export -in sfb.pem -inkey sfb.key -certfile ca.pem -out sfb-chain.pfx -passout env:PW
openssl pkcs12 -export -nokeys -in sfb.pem -out sfb-certonly.pfx -passout env:PW
openssl base64 -in sfb-aes.pfx > sfb-aes-pfx.b64                        # a Base64-wrapped PFX

# Certificates that break OAuthTokenIssuer rules.
q openssl req -x509 -newkey rsa:1024 -nodes -keyout weak-1024.key -out weak-1024.pem -days 36500 -subj "/CN=sfb.contoso.com" -sha256
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ec-p256.key -out ec-p256.pem -days 36500 -subj "/CN=sfb.contoso.com"
cat ec-p256.key ec-p256.pem > ec-p256-key-cert.pem
q openssl req -x509 -newkey rsa:2048 -nodes -keyout sha1.key -out sha1-signed.pem -days 36500 -subj "/CN=sfb.contoso.com" -sha1
q openssl req -new -newkey rsa:2048 -nodes -keyout nodigsig.key -out nodigsig.csr -subj "/CN=sfb.contoso.com"
q openssl x509 -req -in nodigsig.csr -CA ca.pem -CAkey ca.key -set_serial 0x1002 -days 36500 -sha256 -extfile ext.cnf -extensions nodigsig -out no-digital-signature.pem
rm -f nodigsig.csr nodigsig.key sha1.key
q openssl req -new -newkey rsa:2048 -nodes -keyout other.key -out other.csr -subj "/CN=webext.fabrikam.com"
q openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -set_serial 0x1003 -days 36500 -sha256 -extfile ext.cnf -extensions plain -out other.pem
rm -f other.csr
cat other.key sfb.pem > mismatched-key.pem                              # sfb's certificate, another key
cp sfb.key key-only.pem                                                 # a key, no certificate
# Valid until the last second of year 9999 (GeneralizedTime).
days_to_9999=$(( ( $(date -u -d '9999-12-31 23:59:59' +%s) - $(date -u +%s) ) / 86400 ))
q openssl req -x509 -newkey rsa:2048 -nodes -keyout forever.key -out forever-9999.pem -days "$days_to_9999" -subj "/CN=sfb.contoso.com" -sha256
rm -f forever.key
q openssl pkcs8 -topk8 -in sfb.key -out sfb-encrypted.key -passout env:PW -v2 aes-256-cbc
cat sfb-encrypted.key sfb.pem > encrypted-key-cert.pem

# Bad inputs.
: > empty.pem
printf '\n  \r\n' > whitespace.pem
head -c 700 /dev/urandom > garbage.bin
head -c 300 sfb.der > truncated.der
head -c 900 sfb-aes.pfx > truncated.pfx
sed '$d' sfb.pem > unterminated.pem
printf -- '-----BEGIN CERTIFICATE-----\nNot*Base64!!\n-----END CERTIFICATE-----\n' > bad-base64.pem
printf 'hello world, this is not a certificate\n' > text.txt

# What OpenSSL says about each good certificate (the tests compare).
{
  printf 'file\tsha1\tnot_before\tnot_after\tbase64_der\n'
  for f in sfb.pem weak-1024.pem ec-p256.pem sha1-signed.pem no-digital-signature.pem other.pem forever-9999.pem ca.pem; do
    fp=$(openssl x509 -in "$f" -noout -fingerprint -sha1 | sed 's/.*=//; s/://g')
    nb=$(date -u -d "$(openssl x509 -in "$f" -noout -startdate | sed 's/notBefore=//')" +%Y-%m-%dT%H:%M:%SZ)
    na=$(openssl x509 -in "$f" -noout -enddate | sed 's/notAfter=//')
    na=$(date -u -d "$na" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo "9999-12-31T23:59:59Z")
    b64=$(openssl x509 -in "$f" -outform DER | openssl base64 -A)
    printf '%s\t%s\t%s\t%s\t%s\n' "$f" "$fp" "$nb" "$na" "$b64"
  done
} > expected.tsv
rm -f ext.cnf ca.srl
echo "fixtures regenerated in $(pwd)"
