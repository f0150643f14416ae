"""A real SMTP server on loopback for the reminder tests (aiosmtpd from PyPI).
usage: smtp_server.py PORT_FILE MAILDIR [--tls CERT KEY | --implicit-tls CERT KEY] [--auth USER PASSWORD] [--refuse-basic-auth] [--xoauth2 JWKS_FILE AUDIENCE]
--tls: STARTTLS required; --implicit-tls: TLS from the first byte (SMTPS, port 465 style).
--refuse-basic-auth: answer every AUTH as Exchange Online does once SMTP AUTH Basic
authentication is off (550 5.7.30).
--xoauth2: also offer AUTH XOAUTH2 as Exchange Online does for SMTP with OAuth: the token must be
an RS256 JWT signed by a key in JWKS_FILE, for AUDIENCE, with the SMTP.SendAsApp role; else
535 5.7.3 Authentication unsuccessful. The XOAUTH2 user is recorded as X-Auth-User.
Writes the chosen port to PORT_FILE once listening; each message becomes a file in MAILDIR."""
import asyncio, os, ssl, sys, uuid
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port_file, maildir = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
tls = implicit = auth = xoauth2 = None
refuse_basic = False
while args:
    if args[0] == "--tls":
        tls, args = (args[1], args[2]), args[3:]
    elif args[0] == "--implicit-tls":
        implicit, args = (args[1], args[2]), args[3:]
    elif args[0] == "--refuse-basic-auth":
        refuse_basic, args = True, args[1:]
    elif args[0] == "--xoauth2":
        xoauth2, args = (args[1], args[2]), args[3:]
    elif args[0] == "--auth":
        auth, args = (args[1], args[2]), args[3:]
    else:
        sys.exit(f"unknown {args[0]}")

class Handler:
    async def handle_DATA(self, server, session, envelope):
        if xoauth2 and not getattr(session, "xoauth2_user", None):
            return "530 5.7.57 Client not authenticated to send mail"
        name = os.path.join(maildir, uuid.uuid4().hex + ".eml")
        with open(name + ".tmp", "wb") as f:
            f.write(("X-Rcpt: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(("X-Auth: " + str(session.authenticated) + "\r\n").encode())
            f.write(("X-TLS: " + str(session.ssl is not None) + "\r\n").encode())
            f.write(("X-Auth-User: " + str(getattr(session, "xoauth2_user", None)) + "\r\n").encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 OK"

if xoauth2:
    import base64, json, jwt
    from aiosmtpd.smtp import SMTP
    # An XOAUTH2 line carries a whole JWT; Exchange Online takes lines far longer than 512.
    SMTP.command_size_limit = 16384
    SMTP.line_length_limit = 16384
    with open(xoauth2[0]) as f:
        jwks = jwt.PyJWKSet.from_dict(json.load(f))

    async def auth_XOAUTH2(self, server, args):
        refused = AuthResult(success=False, handled=False, message="535 5.7.3 Authentication unsuccessful")
        raw = args[1] if len(args) > 1 else None
        if raw is None:
            data = await server.challenge_auth("")
        else:
            data = base64.b64decode(raw)
        try:
            parts = dict(p.split("=", 1) for p in data.decode().split("\x01") if p)
            token = parts["auth"].removeprefix("Bearer ")
            kid = jwt.get_unverified_header(token)["kid"]
            key = next(k for k in jwks.keys if k.key_id == kid)
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=xoauth2[1])
            if "SMTP.SendAsApp" not in claims.get("roles", []):
                return refused
        except Exception:
            return refused
        server.session.xoauth2_user = parts["user"]
        return AuthResult(success=True, auth_data=parts["user"])
    Handler.auth_XOAUTH2 = auth_XOAUTH2

def authenticator(server, session, envelope, mechanism, auth_data):
    if refuse_basic:
        return AuthResult(success=False, handled=False, message="550 5.7.30 Basic authentication is not supported for Client Submission.")
    ok = isinstance(auth_data, LoginPassword) and auth and auth_data.login.decode() == auth[0] and auth_data.password.decode() == auth[1]
    # handled=False: aiosmtpd answers 535 itself (otherwise it waits for the handler to)
    return AuthResult(success=bool(ok), handled=False)

kwargs = {}
if tls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls)
    kwargs.update(tls_context=ctx, require_starttls=True)
if implicit:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*implicit)
    kwargs.update(ssl_context=ctx)
# (With implicit TLS the whole session is encrypted; aiosmtpd only counts STARTTLS for
# auth_require_tls, so it is asked for with --tls alone.)
if auth:
            kwargs.update(authenticator=authenticator, auth_require_tls=bool(tls), auth_required=True)
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
c = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
c.start()
with open(port_file + ".tmp", "w") as f:
    f.write(str(port))
os.rename(port_file + ".tmp", port_file)
try:
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(600))
finally:
    c.stop()
