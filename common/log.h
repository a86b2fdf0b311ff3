/* Logging to stderr: "2026-11-22T14:06:00.123Z server-1 INFO message".
 * The level threshold comes from FLOTILLA_LOG (error, warn, info, debug). */
#ifndef FL_COMMON_LOG_H
#define FL_COMMON_LOG_H

enum fl_log_level { FL_LOG_ERROR = 1, FL_LOG_WARN, FL_LOG_INFO, FL_LOG_DEBUG };

void fl_log_init(const char *who);
int fl_log_enabled(int level);
void fl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FL_ERROR(...) fl_log(FL_LOG_ERROR, __VA_ARGS__)
#define FL_WARN(...)  fl_log(FL_LOG_WARN, __VA_ARGS__)
#define FL_INFO(...)  fl_log(FL_LOG_INFO, __VA_ARGS__)
#define FL_DEBUG(...)                                                                              \
    do {                                                                                           \
        if (fl_log_enabled(FL_LOG_DEBUG))                                                          \
            fl_log(FL_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#endif
