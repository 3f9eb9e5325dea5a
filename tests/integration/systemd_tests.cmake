# sluice as a systemd service: the notify protocol with the real binary, the
# unit file under `systemd-analyze verify` (needs package systemd), and the
# .deb built, installed and purged (package_test.sh: root, dpkg, cpack).
add_executable(systemd_integration_tests systemd_test.cc)
target_link_libraries(systemd_integration_tests PRIVATE sluice_test_support Catch2::Catch2 catch_main)
target_compile_definitions(systemd_integration_tests PRIVATE
  SLUICE_BINARY="$<TARGET_FILE:sluice>"
  SLUICE_SOURCE_DIR="${SLUICE_REPO_ROOT}")
add_dependencies(systemd_integration_tests sluice)

add_test(NAME systemd_notify COMMAND systemd_integration_tests "[notify]")
add_test(NAME systemd_unit COMMAND systemd_integration_tests "[unit]")
set_tests_properties(systemd_notify systemd_unit PROPERTIES TIMEOUT 120)

# Builds the .deb from this build tree with cpack, installs it with dpkg,
# checks it, purges it. Exit 77 (skipped) when not root, or when a sluice
# package or /etc/sluice/sluice.yaml already exists (the test would clobber it).
add_test(NAME package
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/package_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(package PROPERTIES
  LABELS package
  TIMEOUT 300
  SKIP_RETURN_CODE 77
  # dpkg takes a lock: one package test at a time, whatever -j says.
  RESOURCE_LOCK dpkg)
