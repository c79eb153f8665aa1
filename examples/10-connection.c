/* SPDX-License-Identifier: MIT */
/* 10. Listener and Client: two unrelated programs talk by address. */
/*
 * Python's multiprocessing.connection:
 *
 *     # server.py
 *     with Listener(('127.0.0.1', 6000), authkey=b'example key') as l:
 *         with l.accept() as conn:
 *             msg = conn.recv_bytes()
 *             conn.send_bytes(msg.upper())
 *     # client.py
 *     with Client(('127.0.0.1', 6000), authkey=b'example key') as conn:
 *         conn.send_bytes(b'hello')
 *         print(conn.recv_bytes())
 *
 * Run as two programs:
 *
 *     10-connection server unix:/tmp/demo.sock &
 *     10-connection client unix:/tmp/demo.sock
 *
 * The server prints its address once it listens (with tcp:HOST:0 the
 * port it got), serves one client and exits; both give up after 10 s.
 * With no argument the program plays the whole scene, over unix: and
 * then tcp:127.0.0.1: it starts itself as a server, reads the address
 * it prints, and starts itself again as the client: separate programs
 * (exec), nothing shared but the address and the key.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <multiproc.h>

static const char KEY[] = "example key";

static int server(const char *address)
{
	mp_listener *l = mp_listener_new(address, KEY, strlen(KEY));
	if (!l) {
		perror("mp_listener_new");
		return 1;
	}
	printf("%s\n", mp_listener_address(l)); /* "ready": the address */
	fflush(stdout);
	mp_conn *c = mp_listener_accept(l, 10);
	if (!c) {
		perror("mp_listener_accept");
		mp_listener_free(l);
		return 1;
	}
	/* Messages of any size: each comes whole, in a buffer its size. */
	for (;;) {
		char *msg;
		ssize_t n = mp_conn_recv_alloc(c, (void **)&msg, 10);
		if (n < 0)
			break; /* MP_ECLOSED: the client hung up */
		fprintf(stderr, "server: got %zd bytes\n", n);
		for (ssize_t i = 0; i < n; i++)
			msg[i] = (char)toupper((unsigned char)msg[i]);
		mp_conn_send(c, msg, (size_t)n);
		free(msg);
	}
	mp_conn_free(c);
	mp_listener_free(l);
	return 0;
}

static int client(const char *address)
{
	mp_conn *c = mp_client(address, KEY, strlen(KEY), 10);
	if (!c) {
		perror("mp_client");
		return 1;
	}
	char reply[64];
	mp_conn_send(c, "hello", 5);
	ssize_t n = mp_conn_recv(c, reply, sizeof(reply), 10);
	printf("client: %.*s\n", (int)(n > 0 ? n : 0), reply);

	size_t big = 16 << 20;
	char *data = malloc(big), *back;
	memset(data, 'a', big);
	mp_conn_send(c, data, big);
	n = mp_conn_recv_alloc(c, (void **)&back, 10);
	printf("client: %zd bytes back, %s\n", n,
	       n == (ssize_t)big && back[0] == 'A' && back[big - 1] == 'A' ?
		       "all upper case" : "WRONG");
	free(back);
	free(data);
	mp_conn_free(c);
	return 0;
}

/* The scene: this program as a server, then again as its client. */
static int scene(const char *self, const char *address)
{
	int out[2];
	if (pipe(out) < 0)
		return 1;
	fflush(NULL);
	pid_t srv = fork();
	if (srv == 0) {
		dup2(out[1], 1);
		close(out[0]);
		close(out[1]);
		execl(self, self, "server", address, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	char bound[128];
	FILE *f = fdopen(out[0], "r");
	if (!f || !fgets(bound, sizeof(bound), f))
		return 1;
	bound[strcspn(bound, "\n")] = '\0';
	printf("server listening on %s\n", bound);
	fflush(NULL);
	pid_t cli = fork();
	if (cli == 0) {
		execl(self, self, "client", bound, (char *)NULL);
		_exit(127);
	}
	int st1, st2;
	waitpid(cli, &st1, 0);
	waitpid(srv, &st2, 0);
	fclose(f);
	return st1 || st2;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "server"))
		return server(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "client"))
		return client(argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: %s [server|client ADDRESS]\n", argv[0]);
		return 2;
	}
	char path[64];
	snprintf(path, sizeof(path), "unix:/tmp/mp-example-%d.sock",
		 (int)getpid());
	return scene("/proc/self/exe", path) ||
	       scene("/proc/self/exe", "tcp:127.0.0.1:0");
}
