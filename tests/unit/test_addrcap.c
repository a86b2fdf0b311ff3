/* common/addrcap: places per peer address against a cap. */
#include "check.h"
#include "common/addrcap.h"

TEST(places_per_address)
{
    struct fl_addrcap a;
    fl_addrcap_init(&a, 2);
    CHECK_EQ_INT(fl_addrcap_take(&a, "10.0.0.1"), 1);
    CHECK_EQ_INT(fl_addrcap_take(&a, "10.0.0.1"), 1);
    CHECK_EQ_INT(fl_addrcap_take(&a, "10.0.0.1"), 0); /* over the cap */
    CHECK_EQ_INT(fl_addrcap_take(&a, "10.0.0.2"), 1); /* another address is not */
    CHECK_EQ_INT(fl_addrcap_count(&a, "10.0.0.1"), 2);
    CHECK_EQ_INT(a.refused, 1);
    fl_addrcap_give(&a, "10.0.0.1");
    CHECK_EQ_INT(fl_addrcap_count(&a, "10.0.0.1"), 1);
    CHECK_EQ_INT(fl_addrcap_take(&a, "10.0.0.1"), 1); /* a place given back is free */
    fl_addrcap_give(&a, "10.0.0.1");
    fl_addrcap_give(&a, "10.0.0.1");
    CHECK_EQ_INT(fl_addrcap_count(&a, "10.0.0.1"), 0);
    fl_addrcap_give(&a, "10.0.0.9"); /* never taken: nothing happens */
    CHECK_EQ_INT(fl_addrcap_count(&a, "10.0.0.9"), 0);
    for (int i = 0; i < 1000; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
        CHECK_EQ_INT(fl_addrcap_take(&a, ip), 1);
    }
    CHECK_EQ_INT(fl_addrcap_count(&a, "10.1.3.249"), 1);
    fl_addrcap_close(&a);
}

int main(void)
{
    RUN(places_per_address);
    return check_summary();
}
