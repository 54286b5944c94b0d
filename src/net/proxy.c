/*
 * proxy.c - HAProxy's PROXY protocol v1 and v2 (proxy-protocol.txt from
 * HAProxy 2.8): decides from the first bytes of a connection whether a
 * valid header is there, incomplete, or impossible.
 *
 * Layer: net, but pure: no sockets, no allocation, no logging, no state
 * kept between calls. The caller buffers the connection's first bytes and
 * calls proxy_parse again on the whole buffer each time more arrive.
 *
 * It must never look at a byte past the end of the header (the CRLF of v1,
 * 16 + length of v2): those are the client's SMTP bytes. It must never
 * answer "need more" for a prefix that cannot become a valid header, so
 * that a client that is not a proxy is refused at once instead of timing
 * out, and never once PROXY_HEADER_MAX bytes are there, so that a session
 * buffers at most that much.
 */
#include "net/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "lib/err.h"

#define V1_PREFIX	"PROXY "
#define V1_PREFIX_LEN	6
#define V1_ADDR4_MAX	15	/* "255.255.255.255" */
#define V1_ADDR6_MAX	45	/* INET6_ADDRSTRLEN - 1 */
#define V1_PORT_MAX	65535

#define V2_SIG_LEN	12
#define V2_HDR_LEN	16	/* signature, ver_cmd, fam, 2-byte length */
#define V2_VERSION	0x2
#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_UNSPEC	0x00
#define V2_FAM_TCP4	0x11
#define V2_FAM_UDP4	0x12
#define V2_FAM_TCP6	0x21
#define V2_FAM_UDP6	0x22
#define V2_ADDR4_LEN	12	/* 4 + 4 + 2 + 2 */
#define V2_ADDR6_LEN	36	/* 16 + 16 + 2 + 2 */

static const unsigned char v2_sig[V2_SIG_LEN] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
};

/*
 * A cursor over the v1 line. len is capped at PROXY_V1_MAX, so that
 * running out of bytes at the cap means the line is too long.
 */
struct v1 {
	const unsigned char	*buf;
	size_t			 len;
	size_t			 pos;
	struct err		*e;
};

static enum proxy_result
v1_unexpected(struct v1 *p, const char *where)
{
	err_set(p->e, "PROXY v1: unexpected byte 0x%02x at offset %zu in %s",
	    p->buf[p->pos], p->pos, where);
	return PROXY_ERROR;
}

/* Consumes the literal lit (a separator or the CRLF). */
static enum proxy_result
v1_expect(struct v1 *p, const char *lit, const char *where)
{
	for (; *lit != '\0'; lit++) {
		if (p->pos == p->len)
			return PROXY_NEED_MORE;
		if (p->buf[p->pos] != (unsigned char)*lit)
			return v1_unexpected(p, where);
		p->pos++;
	}
	return PROXY_DONE;
}

/*
 * Reads the protocol name into *family: AF_INET, AF_INET6, or AF_UNSPEC
 * for UNKNOWN, the only one that a CR may end. The byte after the name
 * is left for the caller. A byte that no name can continue with is
 * refused at once.
 */
static enum proxy_result
v1_protocol(struct v1 *p, int *family)
{
	static const struct {
		const char	*name;
		int		 family;
	} protos[] = {
		{ "TCP4", AF_INET },
		{ "TCP6", AF_INET6 },
		{ "UNKNOWN", AF_UNSPEC },
	};
	const size_t nprotos = sizeof(protos) / sizeof(protos[0]);
	size_t start = p->pos, n, i;
	unsigned char c;

	for (;; p->pos++) {
		if (p->pos == p->len)
			return PROXY_NEED_MORE;
		c = p->buf[p->pos];
		n = p->pos - start;
		for (i = 0; i < nprotos; i++) {
			const char *name = protos[i].name;

			if (strlen(name) < n ||
			    memcmp(p->buf + start, name, n) != 0)
				continue;
			if (name[n] == '\0' && (c == ' ' ||
			    (c == '\r' && protos[i].family == AF_UNSPEC))) {
				*family = protos[i].family;
				return PROXY_DONE;
			}
			if (name[n] != '\0' && c == (unsigned char)name[n])
				break;
		}
		if (i == nprotos)
			return v1_unexpected(p, "the protocol");
	}
}

/* Anything after "UNKNOWN " up to and including the first CRLF. */
static enum proxy_result
v1_skip_line(struct v1 *p)
{
	for (; p->pos < p->len; p->pos++)
		if (p->buf[p->pos] == '\n' && p->buf[p->pos - 1] == '\r') {
			p->pos++;
			return PROXY_DONE;
		}
	return PROXY_NEED_MORE;
}

static bool
is_addr_char(unsigned char c, int family)
{
	if ((c >= '0' && c <= '9') || c == '.')
		return true;
	return family == AF_INET6 && (c == ':' || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F'));
}

/*
 * Reads an address of family up to the space after it (not consumed)
 * into the sockaddr ss, whose port is set later.
 */
static enum proxy_result
v1_addr(struct v1 *p, int family, struct sockaddr_storage *ss,
    const char *what)
{
	size_t start = p->pos, max;
	char text[V1_ADDR6_MAX + 1];
	int rc;

	max = family == AF_INET ? V1_ADDR4_MAX : V1_ADDR6_MAX;
	for (;;) {
		if (p->pos == p->len)
			return PROXY_NEED_MORE;
		if (p->buf[p->pos] == ' ' && p->pos > start)
			break;
		if (!is_addr_char(p->buf[p->pos], family))
			return v1_unexpected(p, what);
		if (p->pos - start == max) {
			err_set(p->e, "PROXY v1: %s longer than %zu bytes",
			    what, max);
			return PROXY_ERROR;
		}
		p->pos++;
	}
	/* Only address characters: safe to quote. */
	memcpy(text, p->buf + start, p->pos - start);
	text[p->pos - start] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		rc = inet_pton(AF_INET, text, &sin->sin_addr);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		rc = inet_pton(AF_INET6, text, &sin6->sin6_addr);
	}
	if (rc != 1) {
		err_set(p->e, "PROXY v1: bad %s %s", what, text);
		return PROXY_ERROR;
	}
	return PROXY_DONE;
}

/*
 * Reads a decimal port up to the byte end after it (not consumed):
 * 0-65535, no sign, no leading zero.
 */
static enum proxy_result
v1_port(struct v1 *p, unsigned char end, uint16_t *port, const char *what)
{
	size_t start = p->pos;
	unsigned long v = 0;
	unsigned char c;

	for (;;) {
		if (p->pos == p->len)
			return PROXY_NEED_MORE;
		c = p->buf[p->pos];
		if (c == end && p->pos > start)
			break;
		if (c < '0' || c > '9' ||
		    (p->pos > start && p->buf[start] == '0'))
			return v1_unexpected(p, what);
		v = v * 10 + (unsigned long)(c - '0');
		if (v > V1_PORT_MAX) {
			err_set(p->e, "PROXY v1: %s out of range", what);
			return PROXY_ERROR;
		}
		p->pos++;
	}
	*port = (uint16_t)v;
	return PROXY_DONE;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* The fields after "PROXY ", in order; stops at the first that is not done. */
static enum proxy_result
v1_fields(struct v1 *p, struct proxy_info *info)
{
	enum proxy_result r;
	uint16_t sport, dport;
	int family;

	if ((r = v1_protocol(p, &family)) != PROXY_DONE)
		return r;
	if (family == AF_UNSPEC) {
		info->is_local = true;
		if (p->buf[p->pos] == '\r')
			return v1_expect(p, "\r\n", "the line end");
		return v1_skip_line(p);
	}
	if ((r = v1_expect(p, " ", "the protocol")) != PROXY_DONE ||
	    (r = v1_addr(p, family, &info->src, "source address")) !=
	    PROXY_DONE ||
	    (r = v1_expect(p, " ", "source address")) != PROXY_DONE ||
	    (r = v1_addr(p, family, &info->dst, "destination address")) !=
	    PROXY_DONE ||
	    (r = v1_expect(p, " ", "destination address")) != PROXY_DONE ||
	    (r = v1_port(p, ' ', &sport, "source port")) != PROXY_DONE ||
	    (r = v1_expect(p, " ", "source port")) != PROXY_DONE ||
	    (r = v1_port(p, '\r', &dport, "destination port")) !=
	    PROXY_DONE ||
	    (r = v1_expect(p, "\r\n", "the line end")) != PROXY_DONE)
		return r;
	set_port(&info->src, sport);
	set_port(&info->dst, dport);
	return PROXY_DONE;
}

/* buf starts with 'P' (len >= 1). */
static enum proxy_result
parse_v1(const unsigned char *buf, size_t len, struct proxy_info *info,
    size_t *used, struct err *e)
{
	struct v1 p = { buf, len < PROXY_V1_MAX ? len : PROXY_V1_MAX, 0, e };
	struct proxy_info tmp;
	enum proxy_result r;

	memset(&tmp, 0, sizeof(tmp));
	if (memcmp(buf, V1_PREFIX, p.len < V1_PREFIX_LEN ? p.len :
	    V1_PREFIX_LEN) != 0) {
		err_set(e, "not a PROXY protocol header");
		return PROXY_ERROR;
	}
	if (p.len < V1_PREFIX_LEN)
		return PROXY_NEED_MORE;
	p.pos = V1_PREFIX_LEN;
	r = v1_fields(&p, &tmp);
	if (r == PROXY_NEED_MORE && p.len == PROXY_V1_MAX) {
		err_set(e, "PROXY v1 line longer than %d bytes", PROXY_V1_MAX);
		return PROXY_ERROR;
	}
	if (r != PROXY_DONE)
		return r;
	*info = tmp;
	*used = p.pos;
	return PROXY_DONE;
}

/* Checks the family byte of a v2 PROXY command; *need = address bytes. */
static enum proxy_result
v2_family(unsigned char fam, size_t *need, struct err *e)
{
	switch (fam) {
	case V2_FAM_UNSPEC:
		*need = 0;
		return PROXY_DONE;
	case V2_FAM_TCP4:
		*need = V2_ADDR4_LEN;
		return PROXY_DONE;
	case V2_FAM_TCP6:
		*need = V2_ADDR6_LEN;
		return PROXY_DONE;
	case V2_FAM_UDP4:
	case V2_FAM_UDP6:
		err_set(e, "UDP is not supported");
		return PROXY_ERROR;
	default:
		err_set(e, "unsupported address family 0x%02x", fam);
		return PROXY_ERROR;
	}
}

/* Fills info from the address block a of family fam (TCP4 or TCP6). */
static void
v2_addrs(const unsigned char *a, unsigned char fam, struct proxy_info *info)
{
	memset(info, 0, sizeof(*info));
	if (fam == V2_FAM_TCP4) {
		struct sockaddr_in *src = (struct sockaddr_in *)&info->src;
		struct sockaddr_in *dst = (struct sockaddr_in *)&info->dst;

		src->sin_family = dst->sin_family = AF_INET;
		memcpy(&src->sin_addr, a, 4);
		memcpy(&dst->sin_addr, a + 4, 4);
		memcpy(&src->sin_port, a + 8, 2);	/* network order */
		memcpy(&dst->sin_port, a + 10, 2);
	} else {
		struct sockaddr_in6 *src = (struct sockaddr_in6 *)&info->src;
		struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&info->dst;

		src->sin6_family = dst->sin6_family = AF_INET6;
		memcpy(&src->sin6_addr, a, 16);
		memcpy(&dst->sin6_addr, a + 16, 16);
		memcpy(&src->sin6_port, a + 32, 2);
		memcpy(&dst->sin6_port, a + 34, 2);
	}
}

/* buf starts with the whole v2 signature (len >= 12). */
static enum proxy_result
parse_v2(const unsigned char *buf, size_t len, struct proxy_info *info,
    size_t *used, struct err *e)
{
	unsigned ver, cmd;
	size_t body, need = 0;
	enum proxy_result r;

	if (len <= 12)
		return PROXY_NEED_MORE;
	ver = buf[12] >> 4;
	cmd = buf[12] & 0x0f;
	if (ver != V2_VERSION) {
		err_set(e, "PROXY v2: unsupported version %u", ver);
		return PROXY_ERROR;
	}
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY) {
		err_set(e, "PROXY v2: unknown command 0x%x", cmd);
		return PROXY_ERROR;
	}
	if (len <= 13)
		return PROXY_NEED_MORE;
	/* LOCAL: the family is ignored (proxy-protocol.txt §2.2). */
	if (cmd == V2_CMD_PROXY &&
	    (r = v2_family(buf[13], &need, e)) != PROXY_DONE)
		return r;
	if (len < V2_HDR_LEN)
		return PROXY_NEED_MORE;
	body = (size_t)buf[14] << 8 | buf[15];
	if (V2_HDR_LEN + body > PROXY_HEADER_MAX) {
		err_set(e, "PROXY v2 header too long (%zu bytes, at most %d)",
		    V2_HDR_LEN + body, PROXY_HEADER_MAX);
		return PROXY_ERROR;
	}
	if (body < need) {
		err_set(e, "PROXY v2: address block too short (%zu bytes for "
		    "%s, %zu needed)", body,
		    buf[13] == V2_FAM_TCP4 ? "TCP4" : "TCP6", need);
		return PROXY_ERROR;
	}
	if (len < V2_HDR_LEN + body)
		return PROXY_NEED_MORE;
	/* What follows the addresses (TLVs, padding) is skipped. */
	if (need > 0)
		v2_addrs(buf + V2_HDR_LEN, buf[13], info);
	else {
		memset(info, 0, sizeof(*info));
		info->is_local = true;
	}
	*used = V2_HDR_LEN + body;
	return PROXY_DONE;
}

enum proxy_result
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *info,
    size_t *used, struct err *e)
{
	size_t n;

	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == (unsigned char)V1_PREFIX[0])
		return parse_v1(buf, len, info, used, e);
	n = len < V2_SIG_LEN ? len : V2_SIG_LEN;
	if (memcmp(buf, v2_sig, n) != 0) {
		err_set(e, "not a PROXY protocol header");
		return PROXY_ERROR;
	}
	if (len < V2_SIG_LEN)
		return PROXY_NEED_MORE;
	return parse_v2(buf, len, info, used, e);
}
