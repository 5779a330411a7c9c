# Sourced by the install-*.sh scripts. `need_root NAME` sets SUDO to what runs apt-get as root
# ("" as root, "sudo -n" otherwise) and DEBIAN_FRONTEND so apt asks nothing; it stops the
# calling script NAME with a message when neither works.

need_root() {
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO="sudo -n"
    else
      echo "$1: must run as root (or with sudo available)" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
}
