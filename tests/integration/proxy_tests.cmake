# Integration tests of the HTTP/1.1 data path: the real sluice binary in
# front of real sluice-backend processes on 127.0.0.1 (ephemeral ports).
# One ctest per theme, so `ctest -j2` runs themes in parallel.
add_executable(proxy_integration_tests
  proxy_fixture.cc
  proxy_access_log_test.cc
  proxy_admin_test.cc
  proxy_admin_page_test.cc
  proxy_reload_test.cc
  proxy_client_side_test.cc
  proxy_routing_test.cc
  proxy_upstream_test.cc
  proxy_semantics_test.cc
  proxy_errors_test.cc
  proxy_retries_queue_test.cc
  proxy_shutdown_test.cc
  proxy_buffering_test.cc
  proxy_smuggling_test.cc
  proxy_faults_test.cc
  proxy_limits_test.cc
  proxy_shield_test.cc
  proxy_io_threads_test.cc)
target_link_libraries(proxy_integration_tests PRIVATE sluice_test_support Catch2::Catch2 catch_main)
target_compile_definitions(proxy_integration_tests PRIVATE
  SLUICE_BINARY="$<TARGET_FILE:sluice>"
  SLUICE_BACKEND_BINARY="$<TARGET_FILE:sluice-backend>"
  SLUICE_LEGACY_BACKEND_BINARY="$<TARGET_FILE:sluice-legacy-backend>"
  SLUICE_SOURCE_DIR="${SLUICE_REPO_ROOT}"
  SLUICE_BINARY_DIR="${CMAKE_CURRENT_BINARY_DIR}")
add_dependencies(proxy_integration_tests sluice sluice-backend)
add_dependencies(proxy_integration_tests sluice-legacy-backend)

foreach(theme client_side routing upstream semantics errors retries_queue shutdown access_log reload admin admin_page smuggling buffering faults limits shield io_threads)
  add_test(NAME proxy_${theme} COMMAND proxy_integration_tests "[${theme}]")
  set_tests_properties(proxy_${theme} PROPERTIES TIMEOUT 170)
endforeach()
# The shield's tests measure how sluice learns an app's capacity from its
# latency; a neighbouring test eating the CPU reads as queueing in the app.
set_tests_properties(proxy_shield PROPERTIES RUN_SERIAL TRUE)
