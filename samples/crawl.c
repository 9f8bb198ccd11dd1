/*
 * crawl.c - a small web crawler: fetch a page, follow its links, handle
 * every page as it arrives, and say what went wrong where.
 *
 * The program serves its own web site. A server thread listens on
 * 127.0.0.1, on a port the kernel picks, and answers each HTTP/1.0 GET on
 * a thread of its own after a delay that differs from page to page, so
 * pages arrive in an order of their own, not the order they were asked
 * for. One link leads to a page the site does not have: a 404.
 *
 * The crawler, on a libfutures pool:
 *
 *   pool_submit_blocking(fetch)      a plain socket, a GET, read to EOF;
 *                                    a status other than 200 fails with
 *                                    task_fail(ENOENT, "HTTP 404 from /x")
 *   future_compose(fetch, follow)    once a page is in, follow() parses
 *                                    its links, starts a crawl of each new
 *                                    one and returns when_all() of them:
 *                                    the future of the linked crawls
 *   completion_add(queue, fetch)     the main thread takes pages from the
 *   completion_next(queue)           queue in the order they arrive, and
 *                                    prints each one, or its error and
 *                                    future_error_message()
 *   future_wait_all(fetches)         at the end: every page's outcome, in
 *                                    the order the pages were found
 *
 * The crawl of the first page settles once every page below it has, so
 * the main thread puts it in the queue too: when it comes out, the crawl
 * is over, and its error is the first failure found below it, message
 * included.
 *
 *   usage: crawl [--scale F]   (F multiplies every delay; default 1.0)
 */
#include <futures.h>

#include "sample.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ the site -- */

struct site_page {
    const char *path;
    double delay; /* seconds the server takes to answer, before scaling */
    const char *body;
};

/* clang-format off */
static const struct site_page site[] = {
    {"/index.html", 0.10,
     "<h1>Home</h1> <a href=\"/about.html\">about</a> "
     "<a href=\"/blog.html\">blog</a> <a href=\"/shop.html\">shop</a>"},
    {"/blog.html", 0.05,
     "<h1>Blog</h1> <a href=\"/post-1.html\">first</a> "
     "<a href=\"/post-2.html\">second</a> "
     "<a href=\"/drafts.html\">drafts</a>"},
    {"/post-2.html", 0.10, "<h1>Second post</h1> no links here"},
    {"/shop.html", 0.20,
     "<h1>Shop</h1> <a href=\"/about.html\">about us</a> "
     "<a href=\"/cart.html\">cart</a>"},
    {"/post-1.html", 0.20,
     "<h1>First post</h1> <a href=\"/index.html\">home</a>"},
    {"/about.html", 0.30,
     "<h1>About</h1> <a href=\"/team.html\">the team</a>"},
    {"/cart.html", 0.15, "<h1>Cart</h1> empty"},
    {"/team.html", 0.10,
     "<h1>Team</h1> <a href=\"/index.html\">home</a> "
     "<a href=\"/about.html\">about</a>"},
};
/* clang-format on */
#define NSITE      (sizeof site / sizeof site[0])
#define MISS_DELAY 0.05 /* for a page the site does not have */

static double scale = 1.0;

/* ---------------------------------------------------------- the server -- */

#define MAX_CONNS 32

struct server {
    int fd;         /* the listening socket */
    in_port_t port; /* in host order */
    atomic_bool stopping;
    pthread_t acceptor;
    pthread_t conns[MAX_CONNS]; /* one thread per connection, joined */
    int nconns;                 /* only the acceptor writes it */
};

static const struct site_page *site_find(const char *path)
{
    for (size_t i = 0; i < NSITE; i++)
        if (strcmp(site[i].path, path) == 0)
            return &site[i];
    return NULL;
}

/* Write all of @len bytes; a reader that went away is no error of ours. */
static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* One connection: read the request line, wait the page's delay, answer. */
static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[512];
    size_t len = 0;
    while (len < sizeof req - 1 && !memchr(req, '\n', len)) {
        ssize_t n = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    req[len] = '\0';
    char path[128] = "";
    if (sscanf(req, "GET %127s HTTP/1.", path) != 1)
        strcpy(path, "?");
    const struct site_page *page = site_find(path);
    sample_sleep((page ? page->delay : MISS_DELAY) * scale);
    char head[160];
    const char *body = page ? page->body : "<h1>Not found</h1>";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Type: text/html\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     page ? "200 OK" : "404 Not Found", strlen(body));
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
    close(fd);
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct server *s = arg;
    for (;;) {
        int fd = accept(s->fd, NULL, NULL);
        if (atomic_load(&s->stopping)) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (fd < 0)
            continue; /* EINTR, ECONNABORTED: try again */
        if (s->nconns == MAX_CONNS ||
            pthread_create(&s->conns[s->nconns], NULL, serve_one,
                           (void *)(intptr_t)fd) != 0) {
            close(fd); /* the client sees the connection end: an error */
            continue;
        }
        s->nconns++;
    }
}

static struct sockaddr_in loopback(in_port_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* Listen on 127.0.0.1, port 0 (the kernel picks one), and start accepting. */
static int server_start(struct server *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (s->fd < 0)
        return errno;
    struct sockaddr_in a = loopback(0);
    socklen_t alen = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(s->fd, MAX_CONNS) != 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen) != 0) {
        int err = errno;
        close(s->fd);
        return err;
    }
    s->port = ntohs(a.sin_port);
    atomic_init(&s->stopping, false);
    s->nconns = 0;
    int err = pthread_create(&s->acceptor, NULL, accept_loop, s);
    if (err)
        close(s->fd);
    return err;
}

/* Wake accept() with one last connection of our own, then join them all. */
static void server_stop(struct server *s)
{
    atomic_store(&s->stopping, true);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(s->port);
    if (fd >= 0) {
        connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
    }
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < s->nconns; i++)
        pthread_join(s->conns[i], NULL);
    close(s->fd);
}

/* --------------------------------------------------------- the crawler -- */

#define MAX_PAGES 16
#define BODY_MAX  1024

/*
 * A page the crawler has found. Its fetch writes body and status before
 * it returns, and the rest of the crawler reads them only once the fetch's
 * future has settled: the future hands them across threads.
 */
struct page {
    char path[64];
    char body[BODY_MAX];
    size_t len;
    future_t *fetch; /* the crawler's reference, released at the end */
};

/* What the crawl shares between threads; lock held for pages, npages. */
struct crawler {
    pool_t *pool;
    completion_t *arrivals;
    in_port_t port;
    pthread_mutex_t lock;
    struct page pages[MAX_PAGES];
    int npages;
};

static struct crawler crawler = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Claim @path for a crawl: NULL when it was found already (or no room). */
static struct page *claim(const char *path)
{
    struct page *p = NULL;
    pthread_mutex_lock(&crawler.lock);
    int i = 0;
    while (i < crawler.npages && strcmp(crawler.pages[i].path, path) != 0)
        i++;
    if (i == crawler.npages && i < MAX_PAGES) {
        p = &crawler.pages[crawler.npages++];
        snprintf(p->path, sizeof p->path, "%s", path);
    }
    pthread_mutex_unlock(&crawler.lock);
    return p;
}

static void trace_name(const char *what, const char *path)
{
    char name[128]; /* the trace keeps the first 47 bytes */
    snprintf(name, sizeof name, "%s %s", what, path);
    futures_trace_name(name);
}

/* Connect, send the request, read the whole answer into @buf: 0 or errno. */
static int http_get(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in a = loopback(crawler.port);
    char req[160];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\n\r\n", path);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        err = errno;
    else
        send_all(fd, req, (size_t)n);
    *len = 0;
    while (!err && *len < cap - 1) {
        ssize_t got = recv(fd, buf + *len, cap - 1 - *len, 0);
        if (got < 0 && errno != EINTR)
            err = errno;
        if (got == 0)
            break;
        if (got > 0)
            *len += (size_t)got;
    }
    buf[*len] = '\0';
    close(fd);
    return err;
}

/* The blocking job: one GET. Succeeds with its struct page. */
static int fetch(void *arg, void **result)
{
    struct page *p = arg;
    trace_name("GET", p->path);
    char answer[BODY_MAX + 256];
    size_t len;
    int err = http_get(p->path, answer, sizeof answer, &len);
    if (err)
        return task_fail(err, "GET %s: %s", p->path, strerror(err));
    int status = 0;
    const char *body = strstr(answer, "\r\n\r\n");
    if (sscanf(answer, "HTTP/1.%*d %d", &status) != 1 || !body)
        return task_fail(EPROTO, "no HTTP answer from %s", p->path);
    if (status != 200)
        return task_fail(status == 404 ? ENOENT : EIO, "HTTP %d from %s",
                         status, p->path);
    p->len = strlen(body + 4);
    memcpy(p->body, body + 4, p->len + 1);
    *result = p;
    return 0;
}

/* The next href="..." in @s: its path in @out, and where to go on from. */
static const char *next_link(const char *s, char *out, size_t cap)
{
    const char *at = strstr(s, "href=\"");
    if (!at)
        return NULL;
    at += 6;
    size_t n = strcspn(at, "\"");
    snprintf(out, cap, "%.*s", (int)n, at);
    return at + n;
}

static int count_links(const char *body)
{
    char link[64];
    int n = 0;
    while ((body = next_link(body, link, sizeof link)))
        n++;
    return n;
}

static future_t *crawl(const char *path);

/*
 * The compose step, run on a core thread once a page is in: start a crawl
 * of each link not found before, and return the future of all of them.
 * The library takes over the reference returned.
 */
static future_t *follow(void *value, void *arg)
{
    struct page *p = value;
    (void)arg;
    trace_name("links of", p->path);
    future_t *children[MAX_PAGES];
    size_t n = 0;
    char link[64];
    int err = 0;
    for (const char *s = p->body; (s = next_link(s, link, sizeof link));) {
        future_t *child = crawl(link);
        if (child)
            children[n++] = child;
        else if (errno != EALREADY)
            err = errno;
    }
    future_t *all = err ? NULL : when_all(children, n);
    err = all ? 0 : err ? err : errno;
    for (size_t i = 0; i < n; i++)
        future_release(children[i]); /* when_all keeps its own */
    errno = err;
    return all; /* NULL fails the crawl of @p with errno */
}

/*
 * Crawl @path: fetch it, hand the fetch to the arrivals queue, and follow
 * its links once it is in. The future settles when every page below it
 * has settled. NULL with EALREADY for a page found before.
 */
static future_t *crawl(const char *path)
{
    struct page *p = claim(path);
    if (!p) {
        errno = EALREADY;
        return NULL;
    }
    future_t *f = pool_submit_blocking(crawler.pool, fetch, p);
    if (!f)
        return NULL;
    pthread_mutex_lock(&crawler.lock); /* path_of() may be looking */
    p->fetch = f;
    pthread_mutex_unlock(&crawler.lock);
    int err = completion_add(crawler.arrivals, f);
    future_t *below = err ? NULL : future_compose(f, follow, NULL);
    if (err)
        errno = err;
    return below;
}

/* ------------------------------------------------------------- main -- */

/* The page whose fetch @f is: its path, for a fetch that failed. */
static const char *path_of(future_t *f)
{
    const char *path = "?";
    pthread_mutex_lock(&crawler.lock);
    for (int i = 0; i < crawler.npages; i++)
        if (crawler.pages[i].fetch == f)
            path = crawler.pages[i].path;
    pthread_mutex_unlock(&crawler.lock);
    return path;
}

/*
 * Take futures from the queue as they settle until it runs dry. The root
 * crawl is in it too, and settles only after every fetch was added, so
 * ENOENT means that the crawl is over. Returns the pages that failed.
 */
static int handle_arrivals(future_t *root, double start)
{
    int arrived = 0, failed = 0;
    future_t *f;
    while ((f = completion_next(crawler.arrivals, UINT64_MAX))) {
        double t = sample_now() - start;
        void *value;
        int err = future_wait(f, &value); /* settled: returns at once */
        const char *msg = future_error_message(f);
        if (f == root) {
            printf("%5.2f s  crawl finished: %s%s%s%s\n", t,
                   err ? strerror(err) : "ok", msg ? " (" : "", msg ? msg : "",
                   msg ? ")" : "");
        } else if (err) {
            failed++;
            printf("%5.2f s  #%d %-13s failed: %s\n", t, ++arrived, path_of(f),
                   msg ? msg : strerror(err));
        } else {
            struct page *p = value;
            int links = count_links(p->body);
            printf("%5.2f s  #%d %-13s %3zu bytes, %d link%s\n", t, ++arrived,
                   p->path, p->len, links, links == 1 ? "" : "s");
        }
        fflush(stdout);
        future_release(f);
    }
    if (errno != ENOENT)
        perror("completion_next");
    return failed;
}

/* Every page's outcome at once, in the order the pages were found. */
static bool summarise(int failed_on_arrival)
{
    future_t *fs[MAX_PAGES];
    const char *paths[MAX_PAGES];
    void *values[MAX_PAGES];
    int errors[MAX_PAGES];
    int n = 0;
    /* The crawl is over: nobody adds pages now. A page whose fetch could
     * not even be submitted has no future, and no place here. */
    for (int i = 0; i < crawler.npages; i++) {
        if (crawler.pages[i].fetch) {
            fs[n] = crawler.pages[i].fetch;
            paths[n++] = crawler.pages[i].path;
        }
    }
    int first = future_wait_all(fs, (size_t)n, values, errors);
    int failed = 0;
    printf("pages, in the order they were found (future_wait_all):\n");
    for (int i = 0; i < n; i++) {
        const char *msg = future_error_message(fs[i]);
        struct page *p = values[i];
        if (errors[i]) {
            failed++;
            printf("  %-13s %s\n", paths[i], msg ? msg : strerror(errors[i]));
        } else {
            printf("  %-13s ok, %zu bytes\n", paths[i], p->len);
        }
    }
    printf("%d pages, %d fetched, %d failed; first error: %s\n", n, n - failed,
           failed, first ? strerror(first) : "none");
    return failed == failed_on_arrival;
}

int main(int argc, char **argv)
{
    if (!sample_parse_args(argc, argv, &scale, NULL, "[--scale F]"))
        return 2;
    struct server server;
    int err = server_start(&server);
    if (err) {
        fprintf(stderr, "server: %s\n", strerror(err));
        return 1;
    }
    printf("serving %zu pages on 127.0.0.1; crawling from /index.html\n",
           NSITE);
    /* Two core threads for the compose steps; the fetches block, so each
     * gets a blocking thread, started on demand. */
    crawler.pool = pool_create(2);
    crawler.arrivals = completion_create();
    crawler.port = server.port;
    if (!crawler.pool || !crawler.arrivals) {
        perror("crawler");
        return 1;
    }
    double start = sample_now();
    future_t *root = crawl("/index.html");
    err = root ? completion_add(crawler.arrivals, root) : errno;
    int failed = err ? -1 : handle_arrivals(root, start);
    if (err)
        fprintf(stderr, "crawl: %s\n", strerror(err));
    bool ok = !err && summarise(failed);
    printf("total: %.2f s\n", sample_now() - start);
    future_release(root);
    for (int i = 0; i < crawler.npages; i++)
        future_release(crawler.pages[i].fetch);
    completion_release(crawler.arrivals);
    pool_destroy(crawler.pool);
    server_stop(&server);
    return ok && fflush(stdout) == 0 ? 0 : 1;
}
