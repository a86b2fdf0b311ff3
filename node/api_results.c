/* /v1/tasks/ID/results, /v1/results, /v1/hosts/HOST/results — the results
 * of units, by task, by a list of hosts and by one host (docs/API.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "node/node_int.h"
#include "store/iter.h"

#define HOSTS_PER_QUERY 1000

static json_t *result_json(const char *task, uint32_t unit, const char *host, size_t hl,
                           const struct store_result *r)
{
    json_t *o =
        json_pack("{s:s, s:I, s:s%, s:s, s:i, s:I, s:I, s:s, s:I}", "task", task, "unit",
                  (json_int_t)unit, "host", host, hl, "status", store_status_name(r->status), "rc",
                  r->rc, "attempt", (json_int_t)r->attempt, "token", (json_int_t)r->token, "node",
                  r->node, "finished_ms", (json_int_t)r->finished_ms);
    json_t *tail = json_stringn((const char *)r->tail, r->tail_len);
    if (tail == NULL) { /* not UTF-8: show it escaped byte by byte */
        char *esc = fl_malloc(r->tail_len * 4 + 1);
        size_t o2 = 0;
        for (size_t i = 0; esc != NULL && i < r->tail_len; i++) {
            unsigned char ch = r->tail[i];
            o2 += (size_t)(ch >= 0x20 && ch < 0x7f ? snprintf(esc + o2, 5, "%c", ch)
                                                   : snprintf(esc + o2, 5, "\\x%02x", ch));
        }
        tail = json_string(esc ? esc : "");
        fl_free(esc);
    }
    json_object_set_new(o, "tail", tail);
    return o;
}

/* Results of one task, optionally only for ?host=H and/or ?status=S. */
void node__tasks_results(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    struct store_task task;
    struct store_iter it;
    struct store_result r;
    size_t idl;
    char host[STORE_HOST_MAX] = "", status[32] = "";
    json_t *arr;
    if (http_query_param(req, "host", host, sizeof host) < 0 ||
        http_query_param(req, "status", status, sizeof status) < 0) {
        node__respond_err(req, FL_EINVAL, "bad query");
        return;
    }
    if (!node__open_task(s, req, args[0], &t, &task)) {
        return;
    }
    idl = strlen(task.id);
    arr = json_array();
    if (store_iter_open(t, STORE_RESULTS, task.id, idl, &it) == FL_OK) {
        /* Keys: task id '/' u32 unit '/' host. */
        while (store_result_next(&it, &r) == FL_OK) {
            const char *kp = it.key;
            size_t kl = it.klen;
            if (kl < idl + 6 || kp[idl] != '/') {
                break;
            }
            const char *h = kp + idl + 6;
            size_t hl = kl - idl - 6;
            if ((host[0] && (strlen(host) != hl || memcmp(host, h, hl) != 0)) ||
                (status[0] && strcmp(status, store_status_name(r.status)) != 0)) {
                continue;
            }
            uint32_t unit = (uint32_t)(uint8_t)kp[idl + 1] << 24 |
                            (uint32_t)(uint8_t)kp[idl + 2] << 16 |
                            (uint32_t)(uint8_t)kp[idl + 3] << 8 | (uint8_t)kp[idl + 4];
            json_array_append_new(arr, result_json(task.id, unit, h, hl, &r));
        }
        store_iter_close(&it);
    }
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:s, s:o}", "task", args[0], "results", arr));
}

/* Every result recorded for `host`, across tasks, appended to arr. */
static void host_results(struct store_txn *t, const char *host, json_t *arr)
{
    struct store_cursor *c;
    const void *k, *v;
    size_t kl, vl, hl = strlen(host);
    if (store_cursor_open(t, STORE_HOSTIDX, host, hl + 1, &c) != FL_OK) {
        return;
    }
    while (store_cursor_next(c, &k, &kl, &v, &vl) == FL_OK) {
        const char *kp = k;
        char rkey[STORE_TASK_ID_MAX + 6 + STORE_HOST_MAX];
        char task[STORE_TASK_ID_MAX];
        const void *rv;
        size_t rvl, tl;
        struct store_result r;
        if (kl < hl + 7 || memcmp(kp, host, hl) != 0 || kp[hl] != '\0') {
            break;
        }
        tl = kl - hl - 1 - 5;
        if (tl >= sizeof task) {
            continue;
        }
        memcpy(task, kp + hl + 1, tl);
        task[tl] = '\0';
        memcpy(rkey, kp + hl + 1, kl - hl - 1);
        rkey[kl - hl - 1] = '/';
        memcpy(rkey + kl - hl, host, hl);
        if (store_get(t, STORE_RESULTS, rkey, kl - hl + hl, &rv, &rvl) == FL_OK &&
            store_result_decode(rv, rvl, &r) == FL_OK) {
            const uint8_t *u = (const uint8_t *)kp + kl - 4;
            json_array_append_new(arr, result_json(task,
                                                   (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
                                                       (uint32_t)u[2] << 8 | u[3],
                                                   host, hl, &r));
        }
    }
    store_cursor_close(c);
}

void node__host_results(struct node_server *s, struct http_request *req, char **args)
{
    struct store_txn *t;
    json_t *arr;
    if (store_begin(s->store, 0, &t) != FL_OK) {
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    arr = json_array();
    host_results(t, args[0], arr);
    store_abort(t);
    http_respond_json(req, 200, json_pack("{s:s, s:o}", "host", args[0], "results", arr));
}

/* GET /v1/results?hosts=a,b,c */
void node__results_by_hosts(struct node_server *s, struct http_request *req, char **args)
{
    char *list = fl_malloc(256 * 1024);
    struct store_txn *t;
    json_t *arr;
    unsigned n = 0;
    char *save = NULL;
    if (list == NULL) {
        node__respond_err(req, FL_ENOMEM, "out of memory");
        return;
    }
    if (http_query_param(req, "hosts", list, 256 * 1024) != 1 || list[0] == '\0') {
        fl_free(list);
        node__respond_err(req, FL_EINVAL, "give ?hosts=a,b,c");
        return;
    }
    if (store_begin(s->store, 0, &t) != FL_OK) {
        fl_free(list);
        node__respond_err(req, FL_EIO, "%s", store_errmsg(s->store));
        return;
    }
    arr = json_array();
    for (char *h = strtok_r(list, ",", &save); h != NULL && n < HOSTS_PER_QUERY;
         h = strtok_r(NULL, ",", &save), n++) {
        host_results(t, h, arr);
    }
    store_abort(t);
    fl_free(list);
    http_respond_json(req, 200, json_pack("{s:o}", "results", arr));
}
