/* One runner for every Check suite (Check's own tests/check_check_main.c).
 * Each tests/unit/check_<module>.c defines a `Suite *<module>_suite(void)`;
 * suites.def lists them. */
#include <check.h>
#include <stdlib.h>

#define SUITE(fn) Suite *fn(void);
#include "suites.def"
#undef SUITE

int main(void)
{
    SRunner *runner = srunner_create(NULL);
#define SUITE(fn) srunner_add_suite(runner, fn());
#include "suites.def"
#undef SUITE
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
