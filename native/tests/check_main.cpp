#include "check.h"

int main() { return attune_test::run_registered_tests(); }
