# The Debian package: `make deb` (cmake --build build && cd build && cpack -G DEB)
# writes build/sluice_<version>_<arch>.deb. Included at the end of the
# top-level CMakeLists.txt.
#
# What the package holds (paths with CPACK_PACKAGING_INSTALL_PREFIX=/usr):
#   /usr/sbin/sluice                       install rule in cmd/CMakeLists.txt
#   /lib/systemd/system/sluice.service     packaging/sluice.service
#   /etc/sluice/sluice.yaml                packaging/sluice.yaml (conffile)
#   /etc/logrotate.d/sluice                packaging/sluice.logrotate (conffile)
#   /usr/share/man/man8/sluice.8.gz        packaging/sluice.8, gzipped at build time
#   /usr/share/doc/sluice/*.md             README.md, docs/*.md
# The unit runs sluice as a DynamicUser=, so no maintainer script creates a
# user; the scripts below only tell a running systemd about the unit.
#
# /etc and /lib paths are absolute install destinations: a plain
# `cmake --install` writes them there too, whatever CMAKE_INSTALL_PREFIX is.

set(_sluice_pkg_src ${CMAKE_CURRENT_LIST_DIR})
set(_sluice_pkg_bin ${CMAKE_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${_sluice_pkg_bin})

# Man page: Debian wants it compressed with gzip -9n (-n: no name or time
# stamp, so the .deb is reproducible).
add_custom_command(
  OUTPUT ${_sluice_pkg_bin}/sluice.8.gz
  COMMAND sh -c "gzip -9nc '${_sluice_pkg_src}/sluice.8' > '${_sluice_pkg_bin}/sluice.8.gz'"
  DEPENDS ${_sluice_pkg_src}/sluice.8
  COMMENT "Compressing the sluice(8) man page"
  VERBATIM)
add_custom_target(sluice_manpage ALL DEPENDS ${_sluice_pkg_bin}/sluice.8.gz)

install(FILES ${_sluice_pkg_src}/sluice.service DESTINATION /lib/systemd/system)
install(FILES ${_sluice_pkg_src}/sluice.yaml DESTINATION /etc/sluice)
install(FILES ${_sluice_pkg_src}/sluice.logrotate DESTINATION /etc/logrotate.d RENAME sluice)
install(FILES ${_sluice_pkg_bin}/sluice.8.gz DESTINATION share/man/man8)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION share/doc/sluice)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION share/doc/sluice
        FILES_MATCHING PATTERN "*.md")

# Control files. Everything under /etc is a conffile: dpkg keeps local edits
# on upgrade (asking when the packaged version changed too) and removes the
# files only on purge.
file(WRITE ${_sluice_pkg_bin}/conffiles
  "/etc/sluice/sluice.yaml\n"
  "/etc/logrotate.d/sluice\n")

# postinst: make a running systemd load the new or changed unit, and restart a
# running sluice after an upgrade. Nothing is enabled or started on a first
# install: `systemctl enable --now sluice` is the administrator's decision.
# (Without systemd as PID 1, e.g. in a container, these are no-ops.)
file(WRITE ${_sluice_pkg_bin}/postinst [=[#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  if [ -n "$2" ]; then
    systemctl try-restart sluice.service >/dev/null 2>&1 || true
  fi
fi
exit 0
]=])
# prerm: stop the service before its binary goes away.
file(WRITE ${_sluice_pkg_bin}/prerm [=[#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
  systemctl stop sluice.service >/dev/null 2>&1 || true
fi
exit 0
]=])
# postrm: forget the unit; on purge also drop what `systemctl enable` and the
# service itself left behind (LogsDirectory= is /var/log/private/sluice with
# a /var/log/sluice symlink under DynamicUser=).
file(WRITE ${_sluice_pkg_bin}/postrm [=[#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
  rm -f /etc/systemd/system/multi-user.target.wants/sluice.service
  rm -rf /var/log/sluice /var/log/private/sluice
fi
exit 0
]=])

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR sluice)
set(SLUICE_DEB_MAINTAINER "sluice maintainers <sluice@localhost>"
    CACHE STRING "Maintainer field of the sluice .deb")
set(CPACK_PACKAGE_CONTACT "${SLUICE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SLUICE_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
  "sluice sits in front of applications that serve each request on a thread\n"
  "from a fixed pool. It multiplexes every client connection on one event\n"
  "loop, never sends an application more concurrent requests than it has\n"
  "threads, queues the excess and sheds load early with 503 + Retry-After.\n"
  "This package runs it as a systemd service (Type=notify, sandboxed).")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
# Library dependencies (libuv, yaml-cpp, spdlog, ...) from dpkg-shlibdeps
# (package dpkg-dev); procps provides the /bin/kill of ExecReload=.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "procps")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd, logrotate")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_sluice_pkg_bin}/conffiles
  ${_sluice_pkg_bin}/postinst
  ${_sluice_pkg_bin}/prerm
  ${_sluice_pkg_bin}/postrm)
# 0644 for conffiles, 0755 for the maintainer scripts, as dpkg requires.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
