/*
 * The C API as a C program uses it, against the test server whose URL template is
 * argv[1]. The server answers "user N" for ID N, 500 for ID 13, and never answers
 * ID 999. argv[2] is the template of an HTTPS server that answers the same way to
 * clients with a certificate; argv[3] is its CA, argv[4] and argv[5] a client
 * certificate and key, all PEM files. Run by tests/c_api.rs, under valgrind when it
 * is installed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

static int failures = 0;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

static fanout_client *make_client(const char *template) {
    fanout_config *config = fanout_config_new();
    CHECK(config != NULL);
    CHECK(fanout_config_set_url_template(config, template) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_no_rate_limit(config) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_max_in_flight(config, 4) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_max_attempts(config, 1) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_timeout_ms(config, 60000) == FANOUT_STATUS_OK);
    /* The test server is on this machine: no proxy from the environment. */
    CHECK(fanout_config_set_proxy(config, "") == FANOUT_STATUS_OK);
    CHECK(fanout_config_add_header(config, "x-test", "c") == FANOUT_STATUS_OK);
    fanout_client *client = NULL;
    fanout_error *err = NULL;
    CHECK(fanout_client_new(config, &client, &err) == FANOUT_STATUS_OK);
    CHECK(client != NULL);
    CHECK(err == NULL);
    fanout_config_free(config);
    return client;
}

static void test_success(const fanout_client *client) {
    const uint64_t ids[] = {5, 3, 1, 4, 2, 3};
    fanout_results *results = NULL;
    fanout_error *err = NULL;
    CHECK(fanout_fetch_all(client, ids, 6, NULL, &results, &err) == FANOUT_STATUS_OK);
    CHECK(err == NULL);
    CHECK(fanout_results_len(results) == 5); /* the repeated 3 is fetched once */

    const uint8_t *body = NULL;
    size_t len = 0;
    CHECK(fanout_results_get(results, 3, &body, &len) == FANOUT_STATUS_OK);
    CHECK(len == strlen("user 3") && memcmp(body, "user 3", len) == 0);
    CHECK(fanout_results_get(results, 6, &body, &len) == FANOUT_STATUS_NOT_FOUND);
    CHECK(body == NULL && len == 0); /* cleared, not left pointing at user 3 */

    /* Iteration is in ascending ID order. */
    for (size_t i = 0; i < fanout_results_len(results); i++) {
        uint64_t id = 0;
        char expected[32];
        CHECK(fanout_results_at(results, i, &id, &body, &len) == FANOUT_STATUS_OK);
        CHECK(id == i + 1);
        snprintf(expected, sizeof expected, "user %llu", (unsigned long long)id);
        CHECK(len == strlen(expected) && memcmp(body, expected, len) == 0);
    }
    uint64_t id = 0;
    CHECK(fanout_results_at(results, 5, &id, &body, &len) == FANOUT_STATUS_NOT_FOUND);
    CHECK(id == 0 && body == NULL && len == 0);
    fanout_results_free(results);

    /* No IDs: an empty result, and NULL is allowed for the empty array. */
    CHECK(fanout_fetch_all(client, NULL, 0, NULL, &results, NULL) == FANOUT_STATUS_OK);
    CHECK(fanout_results_len(results) == 0);
    fanout_results_free(results);
}

static void test_failing_id(const fanout_client *client) {
    const uint64_t ids[] = {1, 13, 2};
    fanout_results *results = (fanout_results *)&results; /* overwritten with NULL */
    fanout_error *err = NULL;
    CHECK(fanout_fetch_all(client, ids, 3, NULL, &results, &err) == FANOUT_STATUS_HTTP_STATUS);
    CHECK(results == NULL);
    CHECK(err != NULL);
    CHECK(fanout_error_kind(err) == FANOUT_STATUS_HTTP_STATUS);
    CHECK(fanout_error_http_status(err) == 500);
    uint64_t user_id = 0;
    CHECK(fanout_error_user_id(err, &user_id));
    CHECK(user_id == 13);
    const char *message = fanout_error_message(err);
    CHECK(message != NULL && strstr(message, "500") != NULL);
    fanout_error_free(err);
}

static void test_text_keys(const fanout_client *client) {
    /* The server reads the number in the last path segment: "08" is user 8. */
    const char *const keys[] = {"7", "08", "7", "42"};
    fanout_results *results = NULL;
    fanout_error *err = NULL;
    CHECK(fanout_fetch_all_keys(client, keys, 4, NULL, &results, &err) == FANOUT_STATUS_OK);
    CHECK(err == NULL);
    CHECK(fanout_results_len(results) == 3); /* the repeated "7" is fetched once */

    const uint8_t *body = NULL;
    size_t len = 0;
    CHECK(fanout_results_get_key(results, "08", &body, &len) == FANOUT_STATUS_OK);
    CHECK(len == strlen("user 8") && memcmp(body, "user 8", len) == 0);
    CHECK(fanout_results_get_key(results, "8", &body, &len) == FANOUT_STATUS_NOT_FOUND);
    CHECK(body == NULL && len == 0);
    /* Results of text keys hold no uint64_t IDs. */
    CHECK(fanout_results_get(results, 7, &body, &len) == FANOUT_STATUS_INVALID_ARGUMENT);

    /* Iteration is in ascending byte order of the keys, which are not NUL-terminated. */
    const char *expected[] = {"08", "42", "7"};
    for (size_t i = 0; i < 3; i++) {
        const char *key = NULL;
        size_t key_len = 0;
        CHECK(fanout_results_key_at(results, i, &key, &key_len, &body, &len) ==
              FANOUT_STATUS_OK);
        CHECK(key_len == strlen(expected[i]) && memcmp(key, expected[i], key_len) == 0);
    }
    const char *key = "x";
    size_t key_len = 9;
    CHECK(fanout_results_key_at(results, 3, &key, &key_len, &body, &len) ==
          FANOUT_STATUS_NOT_FOUND);
    CHECK(key == NULL && key_len == 0);
    fanout_results_free(results);

    /* A key that fails is named; one with a slash stays one segment (and so is not a
     * number the server knows). */
    const char *const failing[] = {"1", "2/3"};
    CHECK(fanout_fetch_all_keys(client, failing, 2, NULL, &results, &err) ==
          FANOUT_STATUS_HTTP_STATUS);
    CHECK(results == NULL);
    CHECK(fanout_error_key(err) != NULL && strcmp(fanout_error_key(err), "2/3") == 0);
    CHECK(!fanout_error_user_id(err, NULL));
    CHECK(strstr(fanout_error_message(err), "key \"2/3\"") != NULL);
    fanout_error_free(err);

    /* An empty key, or a NULL one, is refused before any request. */
    const char *const empty[] = {"1", ""};
    CHECK(fanout_fetch_all_keys(client, empty, 2, NULL, &results, &err) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strcmp(fanout_error_key(err), "") == 0);
    fanout_error_free(err);
    const char *const null_key[] = {"1", NULL};
    CHECK(fanout_fetch_all_keys(client, null_key, 2, NULL, &results, &err) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(fanout_error_message(err), "keys[1] is NULL") != NULL);
    CHECK(fanout_error_key(err) == NULL);
    fanout_error_free(err);
    CHECK(fanout_error_key(NULL) == NULL);
}

struct each_seen {
    int ok;
    int failed;
    int stop_after;
    char failed_keys[64];
};

static int on_each(void *user_data, const char *key, const uint8_t *body, size_t len,
                   const fanout_error *error) {
    struct each_seen *seen = user_data;
    if (error == NULL) {
        char expected[32];
        snprintf(expected, sizeof expected, "user %s", key);
        CHECK(body != NULL && len == strlen(expected) && memcmp(body, expected, len) == 0);
        seen->ok++;
    } else {
        CHECK(body == NULL && len == 0);
        CHECK(strcmp(fanout_error_key(error), key) == 0);
        strncat(seen->failed_keys, key[0] ? key : "(empty)",
                sizeof seen->failed_keys - strlen(seen->failed_keys) - 2);
        strcat(seen->failed_keys, ",");
        seen->failed++;
    }
    return seen->stop_after > 0 && seen->ok + seen->failed >= seen->stop_after;
}

static void test_fetch_each(const fanout_client *client) {
    const char *const keys[] = {"1", "2", "13", "3", "", "2", "4"};
    struct each_seen seen = {0, 0, 0, ""};
    fanout_error *err = NULL;
    CHECK(fanout_fetch_each(client, keys, 7, NULL, on_each, &seen, &err) == FANOUT_STATUS_OK);
    CHECK(err == NULL);
    CHECK(seen.ok == 4);     /* 1, 2, 3, 4; the repeated "2" once */
    CHECK(seen.failed == 2); /* 13 answers 500; the empty key makes no request */
    CHECK(strstr(seen.failed_keys, "13,") != NULL && strstr(seen.failed_keys, "(empty),") != NULL);

    /* A non-zero return stops the call: no more callbacks. */
    const char *many[50];
    char names[50][8];
    for (int i = 0; i < 50; i++) {
        snprintf(names[i], sizeof names[i], "%d", i + 100);
        many[i] = names[i];
    }
    struct each_seen stop = {0, 0, 1, ""};
    CHECK(fanout_fetch_each(client, many, 50, NULL, on_each, &stop, &err) ==
          FANOUT_STATUS_STOPPED);
    CHECK(stop.ok + stop.failed == 1);
    CHECK(fanout_error_kind(err) == FANOUT_STATUS_STOPPED);
    fanout_error_free(err);

    /* A NULL callback, or a NULL key, is refused before any request. */
    CHECK(fanout_fetch_each(client, keys, 7, NULL, NULL, NULL, NULL) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    const char *const null_key[] = {"1", NULL};
    struct each_seen none = {0, 0, 0, ""};
    CHECK(fanout_fetch_each(client, null_key, 2, NULL, on_each, &none, NULL) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(none.ok + none.failed == 0);
}

struct canceller {
    const fanout_cancel *cancel;
};

static void *cancel_soon(void *arg) {
    const struct canceller *c = arg;
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(fanout_cancel_cancel(c->cancel) == FANOUT_STATUS_OK);
    return NULL;
}

static void test_cancel_from_another_thread(const fanout_client *client) {
    fanout_cancel *cancel = fanout_cancel_new(FANOUT_NO_TIMEOUT);
    CHECK(cancel != NULL);
    CHECK(!fanout_cancel_is_cancelled(cancel));
    struct canceller c = {cancel};
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, cancel_soon, &c) == 0);

    const uint64_t ids[] = {999, 1, 2};
    fanout_results *results = NULL;
    fanout_error *err = NULL;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    CHECK(fanout_fetch_all(client, ids, 3, cancel, &results, &err) == FANOUT_STATUS_CANCELLED);
    /* ID 999 never answers: only the cancel ends the call. The bound is loose, for
     * runs under valgrind on a busy machine. */
    CHECK(seconds_since(&start) < 30.0);
    CHECK(results == NULL);
    CHECK(fanout_error_kind(err) == FANOUT_STATUS_CANCELLED);
    CHECK(!fanout_error_user_id(err, NULL));
    uint64_t user_id = 7;
    CHECK(!fanout_error_user_id(err, &user_id));
    CHECK(user_id == 0);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(fanout_cancel_is_cancelled(cancel));
    fanout_error_free(err);
    fanout_cancel_free(cancel);

    /* A deadline ends a call the same way. */
    cancel = fanout_cancel_new(200);
    CHECK(fanout_fetch_all(client, ids, 1, cancel, &results, &err) ==
          FANOUT_STATUS_DEADLINE_EXCEEDED);
    fanout_error_free(err);
    fanout_cancel_free(cancel);
}

static void test_bad_arguments(const fanout_client *client, const char *template) {
    const uint64_t ids[] = {1};
    fanout_results *results = NULL;
    fanout_error *err = NULL;

    CHECK(fanout_fetch_all(NULL, ids, 1, NULL, &results, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(err != NULL && strstr(fanout_error_message(err), "client") != NULL);
    fanout_error_free(err);
    CHECK(fanout_fetch_all(client, NULL, 1, NULL, &results, NULL) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_fetch_all(client, ids, 1, NULL, NULL, NULL) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_fetch_all(client, ids, SIZE_MAX, NULL, &results, NULL) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(results == NULL);

    CHECK(fanout_config_set_url_template(NULL, template) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_config_set_max_in_flight(NULL, 1) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_cancel_cancel(NULL) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(!fanout_cancel_is_cancelled(NULL));
    CHECK(fanout_results_len(NULL) == 0);
    const uint8_t *body;
    size_t len;
    CHECK(fanout_results_get(NULL, 1, &body, &len) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_error_kind(NULL) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_error_message(NULL) == NULL);
    CHECK(fanout_error_http_status(NULL) == 0);

    fanout_client *made = NULL;
    CHECK(fanout_client_new(NULL, &made, NULL) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(made == NULL);

    /* A configuration the library refuses: the message says why. */
    fanout_config *config = fanout_config_new();
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(fanout_error_message(err), "template") != NULL);
    fanout_error_free(err);
    CHECK(fanout_config_set_url_template(config, "http://127.0.0.1/users") == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(fanout_error_message(err), "{id}") != NULL);
    fanout_error_free(err);
    CHECK(fanout_config_set_url_template(config, template) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_rate_limit(config, 0, 5) == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(made == NULL);
    fanout_error_free(err);
    /* A window of zero milliseconds: the message names the accepted forms. */
    CHECK(fanout_config_set_rate_per_window(config, 5, 0, 5) == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(fanout_error_message(err), "window") != NULL);
    fanout_error_free(err);
    /* 5000 an hour is a valid quota. */
    CHECK(fanout_config_set_rate_per_window(config, 5000, 3600000, 100) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_adaptive_rate(config, false) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_adaptive_rate(NULL, true) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_OK);
    fanout_client_free(made);
    made = NULL;
    /* A proxy URL the library cannot use is named, its password masked. */
    CHECK(fanout_config_set_proxy(config, "ftp://me:secret@proxy.test") == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(fanout_error_message(err), "ftp://me:***@proxy.test") != NULL);
    CHECK(strstr(fanout_error_message(err), "secret") == NULL);
    fanout_error_free(err);
    CHECK(fanout_config_set_proxy(config, NULL) == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &made, &err) == FANOUT_STATUS_OK);
    fanout_client_free(made);
    made = NULL;
    CHECK(fanout_config_set_proxy(NULL, "") == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_config_set_url_template(config, "\xff{id}") == FANOUT_STATUS_INVALID_ARGUMENT);
    fanout_config_free(config);

    /* Freeing NULL does nothing. */
    fanout_config_free(NULL);
    fanout_client_free(NULL);
    fanout_cancel_free(NULL);
    fanout_results_free(NULL);
    fanout_error_free(NULL);
}

/* The whole file at `path`; its length in *len. Free it with free(). */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    CHECK(data != NULL);
    *len = fread(data, 1, (size_t)size, file);
    CHECK(*len == (size_t)size);
    fclose(file);
    return data;
}

static void test_tls(const char *template, const char *ca_path, const char *cert_path,
                     const char *key_path) {
    size_t ca_len, cert_len, key_len;
    uint8_t *ca = read_file(ca_path, &ca_len);
    uint8_t *cert = read_file(cert_path, &cert_len);
    uint8_t *key = read_file(key_path, &key_len);
    const uint64_t ids[] = {1, 2};
    fanout_client *client = NULL;
    fanout_results *results = NULL;
    fanout_error *err = NULL;

    /* The server's CA trusted, but no client certificate: the server refuses. */
    fanout_config *config = fanout_config_new();
    CHECK(fanout_config_set_url_template(config, template) == FANOUT_STATUS_OK);
    CHECK(fanout_config_add_root_certificates_pem(config, ca, ca_len) == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &client, &err) == FANOUT_STATUS_OK);
    CHECK(fanout_fetch_all(client, ids, 2, NULL, &results, &err) == FANOUT_STATUS_TRANSPORT);
    CHECK(err != NULL && strstr(fanout_error_message(err), "TLS") != NULL);
    fanout_error_free(err);
    fanout_client_free(client);

    /* With the client certificate: fetched over mutual TLS. */
    CHECK(fanout_config_set_client_certificate_pem(config, cert, cert_len, key, key_len) ==
          FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &client, &err) == FANOUT_STATUS_OK);
    CHECK(fanout_fetch_all(client, ids, 2, NULL, &results, &err) == FANOUT_STATUS_OK);
    const uint8_t *body = NULL;
    size_t len = 0;
    CHECK(fanout_results_get(results, 2, &body, &len) == FANOUT_STATUS_OK);
    CHECK(len == strlen("user 2") && memcmp(body, "user 2", len) == 0);
    fanout_results_free(results);
    fanout_client_free(client);

    /* NULL where bytes are required changes nothing. */
    CHECK(fanout_config_add_root_certificates_pem(NULL, ca, ca_len) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_config_add_root_certificates_pem(config, NULL, 1) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(fanout_config_set_client_certificate_pem(config, cert, cert_len, NULL, 0) ==
          FANOUT_STATUS_INVALID_ARGUMENT);
    fanout_config_free(config);

    /* Text that is not a certificate: refused when the client is made, and the
     * message says which setting. */
    const char *not_pem = "not a certificate";
    config = fanout_config_new();
    CHECK(fanout_config_set_url_template(config, template) == FANOUT_STATUS_OK);
    CHECK(fanout_config_add_root_certificates_pem(config, (const uint8_t *)not_pem,
                                                  strlen(not_pem)) == FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &client, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(client == NULL);
    CHECK(err != NULL && strstr(fanout_error_message(err), "root certificates") != NULL);
    fanout_error_free(err);
    fanout_config_free(config);

    /* A certificate where the key should be. */
    config = fanout_config_new();
    CHECK(fanout_config_set_url_template(config, template) == FANOUT_STATUS_OK);
    CHECK(fanout_config_set_client_certificate_pem(config, cert, cert_len, cert, cert_len) ==
          FANOUT_STATUS_OK);
    CHECK(fanout_client_new(config, &client, &err) == FANOUT_STATUS_INVALID_ARGUMENT);
    CHECK(err != NULL && strstr(fanout_error_message(err), "no private key") != NULL);
    fanout_error_free(err);
    fanout_config_free(config);

    free(ca);
    free(cert);
    free(key);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s URL_TEMPLATE HTTPS_TEMPLATE CA_PEM CERT_PEM KEY_PEM\n",
                argv[0]);
        return 2;
    }
    fanout_client *client = make_client(argv[1]);
    test_success(client);
    test_failing_id(client);
    test_text_keys(client);
    test_fetch_each(client);
    test_cancel_from_another_thread(client);
    test_bad_arguments(client, argv[1]);
    fanout_client_free(client);
    test_tls(argv[2], argv[3], argv[4], argv[5]);
    if (failures > 0) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
