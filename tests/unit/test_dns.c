/*
 * test_dns.c - the asynchronous resolver against a real DNS server:
 * dnsmasq (package dnsmasq-base) started on a free loopback port with a
 * generated zone, answering MX, A, AAAA, null MX (RFC 7505), NODATA,
 * NXDOMAIN and REFUSED; plus a silent UDP socket and a closed port for
 * timeouts, cancellation and dns_free with look-ups pending. Every look-up
 * runs through a real libevent loop. dnsmasq is stopped by its PID.
 */
#include "net/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"

#include "t.h"

#define DNSMASQ		"/usr/sbin/dnsmasq"
#define MAX_RESULTS	8

static const char zone[] =
    "local=/test/\n"
    "mx-host=multi.test,mx2.multi.test,20\n"
    "mx-host=multi.test,mx1.multi.test,10\n"
    "mx-host=multi.test,mx3.multi.test,10\n"
    "mx-host=multi.test,mx0.multi.test,5\n"
    "host-record=mx1.multi.test,192.0.2.1\n"
    "mx-host=null.test,.,0\n"
    "mx-host=mixed.test,.,0\n"
    "mx-host=mixed.test,mx.mixed.test,10\n"
    "host-record=nomx.test,192.0.2.3\n"
    "host-record=both.test,192.0.2.2,2001:db8::2\n"
    "host-record=six.test,2001:db8::6\n";

static struct event_base *base;
static char tmpdir[64];
static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static int silent_fd = -1;	/* bound UDP socket that never answers */
static int silent_port;

struct result {
	int			 calls;
	enum dns_status		 status;
	char			 reason[128];
	char			 hosts[MAX_RESULTS][64];
	unsigned		 prefs[MAX_RESULTS];
	struct sockaddr_storage	 addrs[MAX_RESULTS];
	size_t			 n;
	struct dns		*free_me;	/* dns_free from the callback */
};

static void
on_mx(void *arg, enum dns_status status, const struct dns_mx *mx,
    size_t nmx, const char *reason)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	CHECK(reason != NULL);
	CHECK((mx == NULL) == (nmx == 0));
	for (size_t i = 0; i < nmx && i < MAX_RESULTS; i++) {
		snprintf(r->hosts[i], sizeof(r->hosts[i]), "%s", mx[i].host);
		r->prefs[i] = mx[i].preference;
	}
	r->n = nmx;
	if (r->free_me != NULL) {
		dns_free(r->free_me);
		r->free_me = NULL;
	}
}

static void
on_addr(void *arg, enum dns_status status, const struct sockaddr_storage *a,
    size_t n, const char *reason)
{
	struct result *r = arg;

	r->calls++;
	r->status = status;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	CHECK((a == NULL) == (n == 0));
	for (size_t i = 0; i < n && i < MAX_RESULTS; i++)
		r->addrs[i] = a[i];
	r->n = n;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until every result in rs has been called back, or ms. */
static bool
run_until(struct result **rs, size_t n, int ms)
{
	bool expired = false, done = false;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, on_deadline, &expired);

	evtimer_add(t, &tv);
	while (!expired) {
		done = true;
		for (size_t i = 0; i < n; i++)
			if (rs[i]->calls == 0)
				done = false;
		if (done)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
	return done;
}

/* Runs the loop for ms, whatever happens (to see that nothing does). */
static void
run_for(int ms)
{
	bool expired = false;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, on_deadline, &expired);

	evtimer_add(t, &tv);
	while (!expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
}

static bool
addr_is(const struct sockaddr_storage *ss, const char *ip)
{
	char buf[INET6_ADDRSTRLEN];
	const void *p;

	if (ss->ss_family == AF_INET) {
		if (((const struct sockaddr_in *)ss)->sin_port != 0)
			return false;
		p = &((const struct sockaddr_in *)ss)->sin_addr;
	} else if (ss->ss_family == AF_INET6) {
		if (((const struct sockaddr_in6 *)ss)->sin6_port != 0)
			return false;
		p = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	} else
		return false;
	if (inet_ntop(ss->ss_family, p, buf, sizeof(buf)) == NULL)
		return false;
	return strcmp(buf, ip) == 0;
}

/* A port free on 127.0.0.1 for both UDP and TCP right now. */
static int
free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof(sin);
		int u, t, port;

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if ((u = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
			return -1;
		if (bind(u, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
		    getsockname(u, (struct sockaddr *)&sin, &len) == -1) {
			close(u);
			return -1;
		}
		port = ntohs(sin.sin_port);
		t = socket(AF_INET, SOCK_STREAM, 0);
		if (t != -1 && bind(t, (struct sockaddr *)&sin,
		    sizeof(sin)) == 0) {
			close(t);
			close(u);
			return port;
		}
		if (t != -1)
			close(t);
		close(u);
	}
	return -1;
}

/* Any answer to a query for "ready.test" means dnsmasq is up. */
static bool
probe(int port)
{
	static const unsigned char q[] = {
		0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00,
		5, 'r', 'e', 'a', 'd', 'y', 4, 't', 'e', 's', 't', 0,
		0x00, 0x01, 0x00, 0x01,
	};
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { 0, 100000 };
	unsigned char buf[512];
	bool ok;
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((in_port_t)port);
	if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1)
		return false;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ok = sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&sin,
	    sizeof(sin)) == (ssize_t)sizeof(q) &&
	    recv(fd, buf, sizeof(buf), 0) >= 12 && buf[0] == 0x12;
	close(fd);
	return ok;
}

static void
show_log(void)
{
	char path[128], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/dnsmasq.log", tmpdir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL)
		fprintf(stderr, "  dnsmasq: %s", line);
	fclose(f);
}

static pid_t
spawn_dnsmasq(const char *conf, int port)
{
	char portopt[32], confopt[256], logpath[128];
	pid_t pid;
	int fd;

	snprintf(portopt, sizeof(portopt), "--port=%d", port);
	snprintf(confopt, sizeof(confopt), "--conf-file=%s", conf);
	snprintf(logpath, sizeof(logpath), "%s/dnsmasq.log", tmpdir);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		/* Dies with us even if we crash before stop_dnsmasq. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd != -1) {
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
		}
		execl(DNSMASQ, DNSMASQ, "--no-daemon", "--no-resolv",
		    "--no-hosts", portopt, "--listen-address=127.0.0.1",
		    "--bind-interfaces", confopt,
		    (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool
start_dnsmasq(void)
{
	char conf[128];
	FILE *f;

	if (access(DNSMASQ, X_OK) == -1) {
		fprintf(stderr, "  %s: %s\n", DNSMASQ, strerror(errno));
		return false;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_dns.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return false;
	snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", tmpdir);
	if ((f = fopen(conf, "w")) == NULL)
		return false;
	fputs(zone, f);
	if (fclose(f) != 0)
		return false;
	/* The port may be taken between free_port and exec: try again. */
	for (int attempt = 0; attempt < 3; attempt++) {
		double deadline = now() + 3.0;
		int status;

		if ((dnsmasq_port = free_port()) == -1)
			return false;
		if ((dnsmasq_pid = spawn_dnsmasq(conf, dnsmasq_port)) == -1)
			return false;
		while (now() < deadline) {
			if (waitpid(dnsmasq_pid, &status, WNOHANG) ==
			    dnsmasq_pid) {
				dnsmasq_pid = -1;
				break;
			}
			if (probe(dnsmasq_port))
				return true;
		}
		if (dnsmasq_pid != -1) {
			kill(dnsmasq_pid, SIGTERM);
			waitpid(dnsmasq_pid, &status, 0);
			dnsmasq_pid = -1;
		}
	}
	show_log();
	return false;
}

static void
stop_dnsmasq(void)
{
	char path[128];
	int status;

	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, &status, 0);
		dnsmasq_pid = -1;
	}
	if (tmpdir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/dnsmasq.conf", tmpdir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/dnsmasq.log", tmpdir);
	(void)unlink(path);
	(void)rmdir(tmpdir);
}

static bool
open_silent(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((silent_fd = socket(AF_INET, SOCK_DGRAM, 0)) == -1 ||
	    bind(silent_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(silent_fd, (struct sockaddr *)&sin, &len) == -1)
		return false;
	silent_port = ntohs(sin.sin_port);
	return true;
}

/* A resolver pointed at "127.0.0.1:port". */
static struct dns *
resolver(int port)
{
	char server[32], *servers[1] = { server };
	struct err e;
	struct dns *d;

	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	err_clear(&e);
	d = dns_new(base, servers, 1, &e);
	if (d == NULL)
		fprintf(stderr, "  dns_new: %s\n", e.msg);
	return d;
}

static void
test_status_names(void)
{
	CHECK_STR(dns_status_names[DNS_OK], "ok");
	CHECK_STR(dns_status_names[DNS_NOTFOUND], "notfound");
	CHECK_STR(dns_status_names[DNS_NODATA], "nodata");
	CHECK_STR(dns_status_names[DNS_NULLMX], "nullmx");
	CHECK_STR(dns_status_names[DNS_TEMPFAIL], "tempfail");
}

static void
test_new_servers(void)
{
	char *good[] = { "127.0.0.1", "127.0.0.1:5353", "::1", "[::1]",
	    "[::1]:5353", "[2001:db8::1]:53" };
	char *bad[] = { "", "localhost", "127.0.0.1:0", "127.0.0.1:65536",
	    "127.0.0.1:x", "[::1", "[127.0.0.1]:53", "::1:53:", "[::1]x",
	    "1.2.3.4:53:53", "1.2.3" };
	struct err e;
	struct dns *d;

	d = dns_new(base, good, sizeof(good) / sizeof(good[0]), &e);
	CHECK(d != NULL);
	dns_free(d);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		d = dns_new(base, &bad[i], 1, &e);
		CHECK(d == NULL);
		if (d != NULL)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK(strstr(e.msg, "dns server") != NULL);
		dns_free(d);
	}
	/* No servers: /etc/resolv.conf (or c-ares' default). */
	d = dns_new(base, NULL, 0, &e);
	CHECK(d != NULL);
	dns_free(d);
	dns_free(NULL);
}

static void
test_mx_order(void)
{
	struct dns *d = resolver(dnsmasq_port);
	struct result r = { 0 }, *rs[] = { &r };
	struct dns_query *q;

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	q = dns_lookup_mx(d, "multi.test", on_mx, &r);
	CHECK(q != NULL);
	CHECK_INT(r.calls, 0);	/* never from inside dns_lookup_mx */
	CHECK(run_until(rs, 1, 5000));
	CHECK_INT(r.calls, 1);
	CHECK_INT(r.status, DNS_OK);
	CHECK_STR(r.reason, "");
	CHECK_INT(r.n, 4);
	if (r.n == 4) {
		CHECK_STR(r.hosts[0], "mx0.multi.test");
		CHECK_INT(r.prefs[0], 5);
		CHECK_INT(r.prefs[1], 10);
		CHECK_INT(r.prefs[2], 10);
		CHECK((strcmp(r.hosts[1], "mx1.multi.test") == 0 &&
		    strcmp(r.hosts[2], "mx3.multi.test") == 0) ||
		    (strcmp(r.hosts[1], "mx3.multi.test") == 0 &&
		    strcmp(r.hosts[2], "mx1.multi.test") == 0));
		CHECK_STR(r.hosts[3], "mx2.multi.test");
		CHECK_INT(r.prefs[3], 20);
	}
	run_for(50);
	CHECK_INT(r.calls, 1);
	dns_free(d);
}

static void
test_mx_statuses(void)
{
	struct dns *d = resolver(dnsmasq_port);
	struct result nodata = { 0 }, nx = { 0 }, null = { 0 }, mixed = { 0 },
	    refused = { 0 }, empty = { 0 }, a = { 0 };
	struct result *rs[] = { &nodata, &nx, &null, &mixed, &refused, &empty,
	    &a };

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	dns_lookup_mx(d, "nomx.test", on_mx, &nodata);
	dns_lookup_mx(d, "nx.test", on_mx, &nx);
	dns_lookup_mx(d, "null.test", on_mx, &null);
	dns_lookup_mx(d, "mixed.test", on_mx, &mixed);
	/* dnsmasq refuses names outside its local zones. */
	dns_lookup_mx(d, "elsewhere.example", on_mx, &refused);
	dns_lookup_mx(d, "", on_mx, &empty);
	/* RFC 5321 §5.1 fallback: the domain's own address. */
	dns_lookup_addr(d, "nomx.test", on_addr, &a);
	CHECK_INT(empty.calls, 0);
	CHECK(run_until(rs, sizeof(rs) / sizeof(rs[0]), 5000));
	CHECK_INT(nodata.status, DNS_NODATA);
	CHECK_INT(nodata.n, 0);
	CHECK_INT(nx.status, DNS_NOTFOUND);
	CHECK(nx.reason[0] != '\0');
	CHECK_INT(null.status, DNS_NULLMX);
	CHECK_INT(null.n, 0);
	CHECK_INT(mixed.status, DNS_OK);
	CHECK_INT(mixed.n, 1);
	CHECK_STR(mixed.hosts[0], "mx.mixed.test");
	CHECK_INT(refused.status, DNS_TEMPFAIL);
	CHECK(refused.reason[0] != '\0');
	CHECK_INT(empty.status, DNS_NOTFOUND);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK(addr_is(&a.addrs[0], "192.0.2.3"));
	dns_free(d);
}

static void
test_addr(void)
{
	struct dns *d = resolver(dnsmasq_port);
	struct result both = { 0 }, six = { 0 }, nx = { 0 }, nodata = { 0 };
	struct result *rs[] = { &both, &six, &nx, &nodata };
	bool has4 = false, has6 = false;

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	dns_lookup_addr(d, "both.test", on_addr, &both);
	dns_lookup_addr(d, "six.test", on_addr, &six);
	dns_lookup_addr(d, "nx.test", on_addr, &nx);
	dns_lookup_addr(d, "multi.test", on_addr, &nodata);	/* MX only */
	CHECK_INT(both.calls, 0);
	CHECK(run_until(rs, sizeof(rs) / sizeof(rs[0]), 5000));
	CHECK_INT(both.status, DNS_OK);
	CHECK_INT(both.n, 2);
	for (size_t i = 0; i < both.n && i < 2; i++) {
		has4 |= addr_is(&both.addrs[i], "192.0.2.2");
		has6 |= addr_is(&both.addrs[i], "2001:db8::2");
	}
	CHECK(has4);
	CHECK(has6);
	CHECK_INT(six.status, DNS_OK);
	CHECK_INT(six.n, 1);
	CHECK(addr_is(&six.addrs[0], "2001:db8::6"));
	CHECK_INT(nx.status, DNS_NOTFOUND);
	CHECK_INT(nx.n, 0);
	CHECK(nodata.status == DNS_NODATA || nodata.status == DNS_NOTFOUND);
	CHECK_INT(nodata.n, 0);
	dns_free(d);
}

static void
test_literal(void)
{
	/* The server never answers: literals must not need it. */
	struct dns *d = resolver(silent_port);
	struct result v4 = { 0 }, v6 = { 0 }, *rs[] = { &v4, &v6 };

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	dns_lookup_addr(d, "192.0.2.1", on_addr, &v4);
	dns_lookup_addr(d, "::1", on_addr, &v6);
	CHECK_INT(v4.calls, 0);
	CHECK_INT(v6.calls, 0);
	CHECK(run_until(rs, 2, 1000));
	CHECK_INT(v4.status, DNS_OK);
	CHECK_INT(v4.n, 1);
	CHECK(addr_is(&v4.addrs[0], "192.0.2.1"));
	CHECK_INT(v6.status, DNS_OK);
	CHECK_INT(v6.n, 1);
	CHECK(addr_is(&v6.addrs[0], "::1"));
	dns_free(d);
}

static void
test_cancel(void)
{
	struct dns *d = resolver(dnsmasq_port);
	struct result c1 = { 0 }, c2 = { 0 }, c3 = { 0 }, sentinel = { 0 };
	struct result *rs[] = { &sentinel };

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	/* In c-ares, waiting for an answer. */
	dns_cancel(dns_lookup_mx(d, "multi.test", on_mx, &c1));
	dns_cancel(dns_lookup_addr(d, "both.test", on_addr, &c2));
	/* Answered at once, waiting in the loop. */
	dns_cancel(dns_lookup_addr(d, "192.0.2.1", on_addr, &c3));
	dns_lookup_mx(d, "multi.test", on_mx, &sentinel);
	CHECK(run_until(rs, 1, 5000));
	run_for(100);
	CHECK_INT(c1.calls, 0);
	CHECK_INT(c2.calls, 0);
	CHECK_INT(c3.calls, 0);
	CHECK_INT(sentinel.calls, 1);
	CHECK_INT(sentinel.status, DNS_OK);
	dns_cancel(NULL);
	dns_free(d);
}

static void
test_tempfail_silent(void)
{
	struct dns *d = resolver(silent_port);
	struct result mx = { 0 }, a = { 0 }, *rs[] = { &mx, &a };
	struct err e;
	double t0, dt;

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	CHECK_INT(dns_set_timeout(d, 0, 1, &e), -1);
	CHECK_INT(dns_set_timeout(d, 200, 2, &e), 0);
	t0 = now();
	dns_lookup_mx(d, "multi.test", on_mx, &mx);
	dns_lookup_addr(d, "both.test", on_addr, &a);
	CHECK_INT(dns_set_timeout(d, 300, 2, &e), -1);	/* pending */
	CHECK(run_until(rs, 2, 5000));
	dt = now() - t0;
	CHECK_INT(mx.status, DNS_TEMPFAIL);
	CHECK_INT(a.status, DNS_TEMPFAIL);
	CHECK(mx.reason[0] != '\0');
	/* 200 ms, then 400 ms: c-ares doubles the wait each round. */
	CHECK(dt >= 0.5);
	CHECK(dt < 2.0);
	if (dt < 0.5 || dt >= 2.0)
		fprintf(stderr, "  took %.3f s\n", dt);
	dns_free(d);
}

static void
test_tempfail_closed(void)
{
	int port = free_port();
	struct dns *d = resolver(port);
	struct result mx = { 0 }, *rs[] = { &mx };
	struct err e;

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	CHECK_INT(dns_set_timeout(d, 200, 2, &e), 0);
	dns_lookup_mx(d, "multi.test", on_mx, &mx);
	CHECK(run_until(rs, 1, 5000));
	CHECK_INT(mx.status, DNS_TEMPFAIL);
	dns_free(d);
}

static void
test_free_pending(void)
{
	struct dns *d = resolver(silent_port);
	struct result mx = { 0 }, a = { 0 }, lit = { 0 }, c = { 0 };

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	dns_lookup_mx(d, "multi.test", on_mx, &mx);
	dns_lookup_addr(d, "both.test", on_addr, &a);
	dns_lookup_addr(d, "192.0.2.1", on_addr, &lit);
	dns_cancel(dns_lookup_mx(d, "null.test", on_mx, &c));
	run_for(50);	/* the queries are on the wire; lit is delivered */
	CHECK_INT(lit.calls, 1);
	dns_lookup_addr(d, "192.0.2.2", on_addr, &lit);	/* stored, not run */
	dns_free(d);
	run_for(100);
	CHECK_INT(mx.calls, 0);
	CHECK_INT(a.calls, 0);
	CHECK_INT(lit.calls, 1);
	CHECK_INT(c.calls, 0);
}

/* A callback may free the resolver while other results wait. */
static void
test_free_in_callback(void)
{
	struct dns *d = resolver(dnsmasq_port);
	struct result first = { 0 }, other = { 0 }, slow = { 0 };
	struct result *rs[] = { &first };

	if (d == NULL) {
		CHECK(d != NULL);
		return;
	}
	first.free_me = d;
	dns_lookup_mx(d, "", on_mx, &first);		/* stored at once */
	dns_lookup_addr(d, "::1", on_addr, &other);	/* stored at once */
	dns_lookup_mx(d, "multi.test", on_mx, &slow);	/* on the wire */
	CHECK(run_until(rs, 1, 1000));
	run_for(100);
	CHECK_INT(first.calls, 1);
	CHECK(first.free_me == NULL);
	CHECK_INT(other.calls, 0);
	CHECK_INT(slow.calls, 0);
}

int
main(void)
{
	bool up;

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL || !open_silent()) {
		fprintf(stderr, "cannot set up the loop or socket\n");
		return 1;
	}
	RUN(test_status_names);
	RUN(test_new_servers);
	RUN(test_literal);
	RUN(test_tempfail_silent);
	RUN(test_tempfail_closed);
	RUN(test_free_pending);
	up = start_dnsmasq();
	if (!up)
		fprintf(stderr, "  cannot start %s\n", DNSMASQ);
	else {
		RUN(test_mx_order);
		RUN(test_mx_statuses);
		RUN(test_addr);
		RUN(test_cancel);
		RUN(test_free_in_callback);
	}
	stop_dnsmasq();
	close(silent_fd);
	event_base_free(base);
	if (!up) {
		printf("not ok - dnsmasq tests (no %s)\n", DNSMASQ);
		t_failed++;
	}
	T_EXIT();
}
