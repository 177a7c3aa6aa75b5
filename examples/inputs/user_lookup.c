/* Input for the code-review example: a small C function with real problems. */
#include <stdio.h>
#include <string.h>
#include <sqlite3.h>

int find_user(sqlite3 *db, const char *name, char *out, size_t out_len) {
    char sql[256];
    sprintf(sql, "SELECT email FROM users WHERE name = '%s'", name);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK) return -1;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const char *email = (const char *)sqlite3_column_text(stmt, 0);
        for (size_t i = 0; i <= strlen(email); i++) out[i] = email[i + 1];
    }
    return 0;
}
