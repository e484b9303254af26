#!/bin/sh
# Install, upgrade or uninstall sentinel on the server-room host (Debian 12, run as root).
#
#   sudo scripts/install.sh install            venv, user, unit, example config; prints next steps
#   sudo scripts/install.sh upgrade            new program and unit; keeps config and state
#   sudo scripts/install.sh uninstall          removes the program; keeps state, user, edited config
#   sudo scripts/install.sh uninstall --purge  also removes /etc/sentinel, /var/lib/sentinel, user
#   sudo scripts/install.sh grant-read /srv/onnara [--user NAME]
#                                              ACLs that let the service user (sentinel) read
#                                              the document store, and new files in it later
#
# The keeper on the health-center host (docs/keeper.md): the same actions with --keeper, e.g.
#   sudo scripts/install.sh install --keeper   venv, the sentinel-keeper and sentinel-replica
#                                              accounts, /srv/keeper, sentinel-keeper.service,
#                                              /etc/sentinel-keeper with the rsyncd examples
# Its manifest is separate (<PREFIX>/keeper-install-manifest): both roles may share one host,
# and uninstalling one keeps what the other still uses. /srv/keeper (the history) is never
# removed, not even by --purge.
#
# Settings (environment):
#   DESTDIR=<root>    install under <root> (packaging, tests). Nothing outside <root> is touched:
#                     no useradd, chown or systemctl; the intended owners are written to the
#                     manifest <root>/opt/sentinel/install-manifest instead.
#   PREFIX=/opt/sentinel    program (venv, docs, examples); the unit's ExecStart follows it.
#   BINDIR=/usr/local/bin   where the `sentinel` command for admins is linked.
#   UNITDIR=/etc/systemd/system
#   PYTHON=/usr/bin/python3 interpreter for the venv: the system one, not whichever python3 is
#                     first on root's PATH (a pyenv build under /root is one the service
#                     user can never run). Any other is checked as the service user first.
#   PIP_INSTALL_ARGS=       extra pip arguments, e.g. "--no-index --find-links /root/wheels".
#   SENTINEL_NO_VENV=1      skip building the venv (tests; the venv is pip's business).
# /etc/sentinel and /var/lib/sentinel are fixed: systemd's ConfigurationDirectory= and
# StateDirectory= name them.
set -eu
# Directories made on the way (e.g. /etc/sysusers.d) must not inherit a private umask.
umask 022

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/opt/sentinel}
BINDIR=${BINDIR:-/usr/local/bin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
PYTHON=${PYTHON:-/usr/bin/python3}
PIP_INSTALL_ARGS=${PIP_INSTALL_ARGS:-}
SENTINEL_NO_VENV=${SENTINEL_NO_VENV:-}
# Set when check-config, run as the service user after install, refuses the config.
CONFIG_REFUSED=
VENV_OLD=

CONFDIR=/etc/sentinel
# the stores grant-read opened to the service user, one resolved path per line
GRANTS=$CONFDIR/read-grants
STATEDIR=/var/lib/sentinel
SYSUSERS=/etc/sysusers.d/sentinel.conf
TMPFILES=/etc/tmpfiles.d/sentinel.conf
UNIT=$UNITDIR/sentinel.service
MANIFEST=$PREFIX/install-manifest
OTHER_MANIFEST=$PREFIX/keeper-install-manifest
USER_NAME=sentinel
ROLE=room

# use_keeper_role: the health-center keeper's names instead of the room's.
use_keeper_role() {
    ROLE=keeper
    CONFDIR=/etc/sentinel-keeper
    STATEDIR=/var/lib/sentinel-keeper
    SYSUSERS=/etc/sysusers.d/sentinel-keeper.conf
    TMPFILES=/etc/tmpfiles.d/sentinel-keeper.conf
    UNIT=$UNITDIR/sentinel-keeper.service
    MANIFEST=$PREFIX/keeper-install-manifest
    OTHER_MANIFEST=$PREFIX/install-manifest
    USER_NAME=sentinel-keeper
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

say() {
    echo "  $*"
}

# True when we act on the real system (no DESTDIR): only then create users, chown, systemctl.
live() {
    [ -z "$DESTDIR" ]
}

# record TYPE MODE OWNER GROUP PATH: one manifest line (final paths, without DESTDIR).
record() {
    printf '%s\t%s\t%s:%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$MANIFEST_TMP"
}

# put_dir MODE OWNER GROUP PATH
put_dir() {
    mkdir -p "$DESTDIR$4"
    chmod "$1" "$DESTDIR$4"
    if live; then chown "$2:$3" "$4"; fi
    record dir "$1" "$2" "$3" "$4"
}

# put_file MODE OWNER GROUP SOURCE PATH: copy atomically (never a half-written file).
put_file() {
    tmp="$DESTDIR$5.sentinel-new"
    cp "$4" "$tmp"
    chmod "$1" "$tmp"
    if live; then chown "$2:$3" "$tmp"; fi
    mv -f "$tmp" "$DESTDIR$5"
    record file "$1" "$2" "$3" "$5"
}

# put_link TARGET PATH
put_link() {
    ln -sfn "$1" "$DESTDIR$2"
    record link 0777 root root "$2"
}

# Not fatal: in a chroot or container without systemd the files are still right.
reload_systemd() {
    systemctl daemon-reload || say "systemctl daemon-reload failed (is systemd running?)"
}

ensure_user() {
    if ! live; then
        return
    fi
    if [ "$ROLE" = keeper ]; then
        ensure_keeper_users
        return
    fi
    if getent passwd "$USER_NAME" >/dev/null; then
        return
    fi
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers "$SYSUSERS"
    else
        useradd --system --user-group --home-dir "$STATEDIR" --shell /usr/sbin/nologin \
            --comment "sentinel server-room daemon" "$USER_NAME"
    fi
    say "created system user and group $USER_NAME"
}

# The keeper's two accounts (systemd/sentinel-keeper.sysusers says why two, and why /bin/sh).
ensure_keeper_users() {
    if getent passwd sentinel-keeper >/dev/null && getent passwd sentinel-replica >/dev/null; then
        return
    fi
    if command -v systemd-sysusers >/dev/null; then
        systemd-sysusers "$SYSUSERS"
    else
        for account in sentinel-keeper sentinel-replica; do
            if ! getent passwd "$account" >/dev/null; then
                useradd --system --user-group --home-dir "/var/lib/$account" --shell /bin/sh \
                    --comment "sentinel $account" "$account"
            fi
        done
    fi
    say "created system users sentinel-keeper (the keeper) and sentinel-replica (the writer)"
}

# put_back_venv OLD VENV: a failed build leaves the installed release as it was (and a
# failed first install no empty PREFIX).
put_back_venv() {
    rm -rf "$DESTDIR$2"
    if [ -e "$1" ]; then mv "$1" "$DESTDIR$2"; fi
    rmdir "$DESTDIR$PREFIX" 2>/dev/null || true
}

# hidden_by_unit PATH: the unit setting that hides PATH from the service, if one does. Both
# units set ProtectHome=yes and PrivateTmp=yes: a program or interpreter there cannot start
# under systemd even when the service user may read it.
hidden_by_unit() {
    case $1 in
    /root | /root/* | /home | /home/* | /run/user | /run/user/*) echo "ProtectHome=yes" ;;
    /tmp | /tmp/* | /var/tmp | /var/tmp/*) echo "PrivateTmp=yes" ;;
    *) return 1 ;;
    esac
}

# as_user WHO COMMAND...: runuser, not setpriv: setpriv calls execve with root's
# capabilities still in effect, so a path only root may enter passes its exec. From /, as
# systemd starts services, not from a checkout under /root the user may not enter.
as_user() {
    as_user_name=$1
    shift
    (cd / && runuser -u "$as_user_name" -- "$@")
}

# link_chain PATH: PATH and every symlink hop after it, one per line (a venv's python3 is a
# link to the interpreter it was made with, which may itself be a link).
link_chain() {
    hop=$1
    n=0
    echo "$hop"
    while [ -L "$hop" ] && [ "$n" -lt 40 ]; do
        target=$(readlink "$hop")
        case $target in
        /*) hop=$target ;;
        *) hop=$(dirname "$hop")/$target ;;
        esac
        echo "$hop"
        n=$((n + 1))
    done
}

# blocked_path WHO PATH...: the first directory on the way to PATH (its links followed) that
# WHO may not enter, or the file it may not execute, with its mode and owner: the one the
# admin has to change or avoid.
blocked_path() {
    who=$1
    shift
    for start in "$@"; do
        while IFS= read -r hop; do
            dir=
            rest=${hop#/}
            while [ -n "$rest" ]; do
                dir=$dir/${rest%%/*}
                case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
                if [ -d "$dir" ] && ! as_user "$who" test -x "$dir" </dev/null 2>/dev/null; then
                    echo "$dir ($(stat -c '%A %U:%G' "$dir")) is not searchable by $who"
                    return 0
                fi
            done
            if [ -f "$hop" ] && [ ! -L "$hop" ] &&
                ! as_user "$who" test -x "$hop" </dev/null 2>/dev/null; then
                echo "$hop ($(stat -c '%A %U:%G' "$hop")) is not executable by $who"
                return 0
            fi
        done <<EOF
$(link_chain "$start")
EOF
    done
    return 1
}

# venv_problem VENV: why the service user could not run VENV's interpreter (printed; status
# 0), or status 1 when it can. Before the user exists (first install) nobody stands in.
venv_problem() {
    python=$1/bin/python3
    who=$USER_NAME
    if ! getent passwd "$who" >/dev/null; then who=nobody; fi
    # Without either account there is nobody to ask; the check after install still runs.
    if ! getent passwd "$who" >/dev/null; then return 1; fi
    stand_in=
    if [ "$who" = nobody ]; then stand_in=" (nobody stands in for $USER_NAME, not made yet)"; fi
    # The name to show: the first link out of the venv (bin/python3 -> python3.11 -> ...).
    interpreter=$python
    while IFS= read -r hop; do
        case $hop in "$1"/*) ;; *)
            interpreter=$hop
            break
            ;;
        esac
    done <<EOF
$(link_chain "$python")
EOF
    if ! ran=$(as_user "$who" "$python" -c '' </dev/null 2>&1); then
        why=$(blocked_path "$who" "$python") || why=$ran
        echo "the service user cannot run the venv's interpreter $interpreter" \
            "(PYTHON=$PYTHON): $why$stand_in"
        return 0
    fi
    # A binary others may run whose libpython or standard library they may not read starts
    # anyway, on whatever libpython the loader finds next: another Python than root's.
    probe='import sys; print(sys.version.split()[0], "from", sys.base_prefix)'
    theirs=$(as_user "$who" "$python" -c "$probe" </dev/null 2>/dev/null)
    ours=$("$python" -c "$probe" </dev/null 2>/dev/null)
    if [ "$theirs" != "$ours" ]; then
        echo "the venv's interpreter $interpreter (PYTHON=$PYTHON) is Python $ours for root" \
            "but $theirs for $who$stand_in: its library or standard library is where $who" \
            "may not read"
        return 0
    fi
    base=${theirs#* from }
    while IFS= read -r path; do
        if setting=$(hidden_by_unit "$path"); then
            echo "the venv's interpreter $interpreter (PYTHON=$PYTHON) is in $path," \
                "which the unit's $setting hides from the service"
            return 0
        fi
    done <<EOF
$(link_chain "$python")
$(readlink -f "$python")
$base
$(readlink -f "$base")
EOF
    return 1
}

build_venv() {
    venv=$PREFIX/venv
    if [ -n "$SENTINEL_NO_VENV" ]; then
        say "skipped the venv (SENTINEL_NO_VENV)"
        return
    fi
    # A fresh venv each time (a Debian upgrade may change the interpreter under an old one),
    # built at its final path because pip writes that path into every script's #! line.
    # The old one is set aside and comes back if the build fails.
    old=$DESTDIR$venv.sentinel-old
    rm -rf "$old"
    if [ -e "$DESTDIR$venv" ]; then mv "$DESTDIR$venv" "$old"; fi
    # pip comes after the check, as `python3 -m venv` itself adds it (ensurepip), so that a
    # refusal costs no pip install.
    if ! "$PYTHON" -m venv --without-pip "$DESTDIR$venv"; then
        put_back_venv "$old" "$venv"
        die "$PYTHON -m venv failed (its message is above); nothing else was changed"
    fi
    # A venv links to its interpreter, so one the service user cannot run makes a service
    # that can never start (issue 12: a pyenv python3 under /root, mode 0700).
    if live && problem=$(venv_problem "$venv"); then
        put_back_venv "$old" "$venv"
        echo "install.sh: $problem; nothing else was changed" >&2
        die "fix: use the system interpreter, PYTHON=/usr/bin/python3 (the default;" \
            "apt-get install python3-venv), or one outside /root, /home and /tmp that every" \
            "user may run (e.g. /opt/python3.12)"
    fi
    if ! "$DESTDIR$venv/bin/python3" -m ensurepip --upgrade --default-pip >/dev/null; then
        put_back_venv "$old" "$venv"
        die "no pip for the venv (ensurepip's message is above; on Debian: apt-get install" \
            "python3-venv); nothing else was changed"
    fi
    # shellcheck disable=SC2086  # PIP_INSTALL_ARGS is a list of words on purpose
    if "$DESTDIR$venv/bin/pip" install --quiet --disable-pip-version-check \
        $PIP_INSTALL_ARGS "$SRC"; then
        # kept until the service user has run the new release (verify_service_user): an
        # upgrade the config does not pass puts it back (do_upgrade)
        VENV_OLD=$old
    else
        put_back_venv "$old" "$venv"
        die "building $venv failed (pip's message is above); nothing else was changed"
    fi
    # With DESTDIR the scripts' #! lines name <root>/...: fine for tests, not for packaging.
    if live; then chown -R root:root "$venv"; fi
    record venv 0755 root root "$venv"
    say "built $venv"
}

install_program() {
    MANIFEST_TMP=$(mktemp)
    trap 'rm -f "$MANIFEST_TMP"' EXIT
    put_dir 0755 root root "$PREFIX"
    # First, so that a failing pip (no network, bad wheel) leaves the installed release and
    # everything else exactly as it was.
    build_venv
    put_dir 0755 root root "$PREFIX/share"
    put_dir 0755 root root "$PREFIX/share/doc"
    put_dir 0755 root root "$PREFIX/share/examples"
    if [ "$ROLE" = keeper ]; then
        install_keeper_files
    else
        install_room_files
    fi

    put_link "$PREFIX/venv/bin/sentinel" "$BINDIR/sentinel"

    # The manifest describes itself too, so uninstall removes it like any other file.
    record file 0644 root root "$MANIFEST"
    cp "$MANIFEST_TMP" "$DESTDIR$MANIFEST"
    chmod 0644 "$DESTDIR$MANIFEST"
    rm -f "$MANIFEST_TMP"
    trap - EXIT

    if live; then
        systemd-tmpfiles --create "$TMPFILES"
        reload_systemd
        verify_service_user
    fi
}

# drop_old_venv: the new release is accepted; the one before it goes.
drop_old_venv() {
    if [ -n "$VENV_OLD" ]; then rm -rf "$VENV_OLD"; fi
}

# verify_service_user: the service user runs the installed program and its check-config,
# as systemd would start it, before install says it is done. A program it cannot run is an
# error; a config it refuses is the admin's next step (an example config may name files
# not made yet), so it is shown, not fatal.
verify_service_user() {
    if [ -n "$SENTINEL_NO_VENV" ]; then
        return
    fi
    program=$PREFIX/venv/bin/sentinel
    again="scripts/install.sh upgrade"
    if [ "$ROLE" = keeper ]; then again="$again --keeper"; fi
    if ! version=$(as_user "$USER_NAME" "$program" --version </dev/null 2>&1); then
        why=$(blocked_path "$USER_NAME" "$program" "$PREFIX/venv/bin/python3") || why=$version
        drop_old_venv
        die "installed, but $USER_NAME cannot run $program: $why; the service cannot" \
            "start. Fix that, then run $again"
    fi
    say "checked: $USER_NAME runs $program ($version)"
    config=$CONFDIR/sentinel.toml
    if [ "$ROLE" = keeper ]; then config=$CONFDIR/keeper.toml; fi
    if [ ! -e "$config" ]; then
        return
    fi
    checked=0
    report=$(as_user "$USER_NAME" "$program" -c "$config" check-config </dev/null 2>&1) ||
        checked=$?
    case $checked in
    0) say "checked: check-config as $USER_NAME accepts $config:" ;;
    2)
        CONFIG_REFUSED=yes
        say "check-config as $USER_NAME refuses $config; the service will not start until it" \
            "passes:"
        ;;
    *)
        drop_old_venv
        die "installed, but check-config as $USER_NAME failed (exit $checked): $report"
        ;;
    esac
    printf '%s\n' "$report" | sed 's/^/    /'
}

install_room_files() {
    for doc in install.md mqtt-broker.md transport.md; do
        put_file 0644 root root "$SRC/docs/$doc" "$PREFIX/share/doc/$doc"
    done
    for example in sentinel.example.toml rsyncd.conf.example rsyncd.secrets.example \
        authorized_keys.example stunnel-room.conf.example; do
        put_file 0644 root root "$SRC/systemd/$example" "$PREFIX/share/examples/$example"
    done
    # the locked broker of docs/mqtt-broker.md
    for example in mosquitto.conf mosquitto.acl; do
        put_file 0644 root root "$SRC/examples/$example" "$PREFIX/share/examples/$example"
    done

    for dir in /etc/sysusers.d /etc/tmpfiles.d "$UNITDIR" "$BINDIR"; do
        mkdir -p "$DESTDIR$dir"
    done
    put_file 0644 root root "$SRC/systemd/sentinel.sysusers" "$SYSUSERS"
    put_file 0644 root root "$SRC/systemd/sentinel.tmpfiles" "$TMPFILES"
    ensure_user

    unit_tmp=$(mktemp)
    sed "s#/opt/sentinel#$PREFIX#g" "$SRC/systemd/sentinel.service" >"$unit_tmp"
    put_file 0644 root root "$unit_tmp" "$UNIT"
    rm -f "$unit_tmp"

    put_dir 0750 root "$USER_NAME" "$CONFDIR"
    if [ -e "$DESTDIR$CONFDIR/sentinel.toml" ]; then
        record file 0640 root "$USER_NAME" "$CONFDIR/sentinel.toml"
        say "kept $CONFDIR/sentinel.toml"
    else
        put_file 0640 root "$USER_NAME" "$SRC/systemd/sentinel.example.toml" \
            "$CONFDIR/sentinel.toml"
        say "wrote example config $CONFDIR/sentinel.toml"
    fi
    # The example of this release, for comparing after an upgrade.
    put_file 0640 root "$USER_NAME" "$SRC/systemd/sentinel.example.toml" \
        "$CONFDIR/sentinel.toml.example"
    if [ -e "$DESTDIR$STATEDIR" ]; then
        say "kept state in $STATEDIR"
    fi
    put_dir 0750 "$USER_NAME" "$USER_NAME" "$STATEDIR"
}

# put_unit NAME: the unit from systemd/, its ExecStart following PREFIX.
put_unit() {
    unit_tmp=$(mktemp)
    sed "s#/opt/sentinel#$PREFIX#g" "$SRC/systemd/$1" >"$unit_tmp"
    put_file 0644 root root "$unit_tmp" "$UNIT"
    rm -f "$unit_tmp"
}

# put_config_once MODE OWNER GROUP SOURCE PATH: an example becomes the config the first time;
# after that the admin's file is kept (and still recorded, as the room's sentinel.toml is).
put_config_once() {
    if [ -e "$DESTDIR$5" ]; then
        record file "$1" "$2" "$3" "$5"
        say "kept $5"
    else
        put_file "$@"
        say "wrote example $5"
    fi
}

# The keeper on the health-center host: docs/keeper.md walks through what this sets up.
install_keeper_files() {
    for doc in keeper.md transport.md; do
        put_file 0644 root root "$SRC/docs/$doc" "$PREFIX/share/doc/$doc"
    done
    for example in keeper-rsyncd.conf.example keeper-history-rsyncd.conf.example \
        keeper-authorized_keys.example keeper-history-authorized_keys.example \
        stunnel-keeper.conf.example; do
        put_file 0644 root root "$SRC/systemd/$example" "$PREFIX/share/examples/$example"
    done

    for dir in /etc/sysusers.d /etc/tmpfiles.d "$UNITDIR" "$BINDIR"; do
        mkdir -p "$DESTDIR$dir"
    done
    put_file 0644 root root "$SRC/systemd/sentinel-keeper.sysusers" "$SYSUSERS"
    put_file 0644 root root "$SRC/systemd/sentinel-keeper.tmpfiles" "$TMPFILES"
    ensure_user
    put_unit sentinel-keeper.service

    # 0755: the writer's and the drill key's rsync daemons read their configs here.
    put_dir 0755 root root "$CONFDIR"
    put_config_once 0644 root root "$SRC/systemd/keeper-rsyncd.conf.example" \
        "$CONFDIR/rsyncd.conf"
    put_config_once 0644 root root "$SRC/systemd/keeper-history-rsyncd.conf.example" \
        "$CONFDIR/history-rsyncd.conf"
    if [ -e "$SRC/systemd/sentinel-keeper.example.toml" ]; then
        put_config_once 0640 root "$USER_NAME" "$SRC/systemd/sentinel-keeper.example.toml" \
            "$CONFDIR/keeper.toml"
    fi
    if [ -e "$DESTDIR$STATEDIR" ]; then
        say "kept state in $STATEDIR"
    fi
    put_dir 0750 "$USER_NAME" "$USER_NAME" "$STATEDIR"
}

keeper_next_steps() {
    cat <<EOF

Next steps ($PREFIX/share/doc/keeper.md has each one in full):
  1. Per room: its directories (a block in $TMPFILES; "main" is there),
     its modules in $CONFDIR/rsyncd.conf and history-rsyncd.conf, and the
     server room's address in "hosts allow" and in the keys' from=.
  2. Keys: the room's write key in ~sentinel-replica/.ssh/authorized_keys, its drill key in
     ~sentinel-keeper/.ssh/authorized_keys, each with the forced command of
     $PREFIX/share/examples/keeper-*authorized_keys.example.
  3. $CONFDIR/keeper.toml ([keeper], [[keeper.rooms]], its own alerts),
     0640 root:sentinel-keeper.
  4. Start it now and at boot:  systemctl enable --now sentinel-keeper
  5. Watch it:  sentinel -c $CONFDIR/keeper.toml keeper status
EOF
}

# shared PATH: true when the other role's installation still lists PATH (the venv, docs, the
# admin's `sentinel` link): uninstalling this role must leave it.
shared() {
    [ -e "$DESTDIR$OTHER_MANIFEST" ] && cut -f4 "$DESTDIR$OTHER_MANIFEST" | grep -qxF "$1"
}

# The keeper's rsyncd.conf and history-rsyncd.conf go while they are the examples; an edited
# one, keeper.toml and any secrets are the admin's. /srv/keeper is never removed here.
uninstall_keeper() {
    purge=$1
    untouched=""
    for pair in rsyncd.conf:keeper-rsyncd.conf.example \
        history-rsyncd.conf:keeper-history-rsyncd.conf.example \
        keeper.toml:sentinel-keeper.example.toml; do
        if cmp -s "$DESTDIR$CONFDIR/${pair%%:*}" "$SRC/systemd/${pair#*:}"; then
            untouched="$untouched ${pair%%:*}"
        fi
    done
    remove_program
    if [ "$purge" = yes ]; then
        # The writer's home (tmpfiles makes it; its .ssh holds the rooms' write keys) goes
        # with its account.
        rm -rf "$DESTDIR$CONFDIR" "$DESTDIR$STATEDIR" "$DESTDIR/var/lib/sentinel-replica"
        if live; then
            for account in sentinel-keeper sentinel-replica; do
                if getent passwd "$account" >/dev/null; then userdel "$account"; fi
                if getent group "$account" >/dev/null; then groupdel "$account"; fi
            done
        fi
        say "purged $CONFDIR, $STATEDIR, /var/lib/sentinel-replica and the sentinel-keeper" \
            "and sentinel-replica users"
    else
        for config in $untouched; do rm -f "$DESTDIR$CONFDIR/$config"; done
        rmdir "$DESTDIR$CONFDIR" 2>/dev/null || say "kept $CONFDIR (your config and credentials)"
        say "kept $STATEDIR and the sentinel-keeper and sentinel-replica users" \
            "(uninstall --purge --keeper removes them)"
    fi
    say "kept /srv/keeper: the rooms' landing areas and history are never removed by uninstall"
    if live; then
        reload_systemd
    fi
}

# grant_read [--user NAME] PATH...: read access to the document store for the service user,
# with ACLs (docs/install.md, "Letting sentinel read the document store"): r on files, r and x
# on directories, and a default ACL on every directory so files created later get it too.
# Not `setfacl -R -m u:NAME:rX`: a file that inherited the default entry (r-x, masked) would
# get a real x from X on the next run. PATH itself may be a symlink (a store linked from
# /srv); a symlink inside the tree is never followed.
# setfacl -m is idempotent: running it again changes nothing.
grant_read() {
    grant_user=$USER_NAME
    paths=""
    while [ $# -gt 0 ]; do
        case $1 in
        --user)
            [ $# -ge 2 ] || die "grant-read: --user needs a name"
            grant_user=$2
            shift
            ;;
        -*) die "grant-read takes directories and --user NAME, not '$1'" ;;
        *'
'*) die "grant-read: a path with a newline is not taken (rename it first)" ;;
        *) paths="$paths
$1" ;;
        esac
        shift
    done
    [ -n "$paths" ] || die "grant-read: name the document store, e.g. grant-read /srv/onnara"
    live || die "grant-read changes this host's files: unset DESTDIR"
    [ "$(id -u)" = 0 ] || die "grant-read: run as root"
    command -v setfacl >/dev/null || die "setfacl is missing: apt-get install acl"
    getent passwd "$grant_user" >/dev/null ||
        die "grant-read: no user '$grant_user' (run install first, or give --user NAME)"
    # every path is checked before any is changed; a path is taken as written, not as a
    # pattern (set -f: `grant-read '/srv/a*'` must not grant whatever matches)
    set -f
    old_ifs=$IFS
    IFS='
'
    for path in $paths; do
        [ -e "$path" ] || die "grant-read: $path does not exist; nothing was changed"
    done
    for path in $paths; do
        IFS=$old_ifs
        # The store's writers (the application, clerks on a share) can plant symlinks in it,
        # and this runs as root: the store is resolved once (it may be a link from /srv), and
        # from then on nothing below it is followed: find does not, setfacl -P skips a link
        # (one swapped in after find listed it, too), the marker is never written through one.
        real=$(realpath -e -- "$path") || die "grant-read: cannot resolve $path"
        case $real in
        / | /etc | /etc/* | /usr | /usr/* | /bin | /sbin | /lib | /lib64 | /boot | /boot/* | \
            /dev | /dev/* | /proc | /proc/* | /sys | /sys/* | /run | /root | /root/* | /var | \
            /home | /var/lib | /var/lib/sentinel*)
            die "grant-read: $real is a system directory, not a document store; nothing" \
                "was changed there" ;;
        esac
        # sentinel only reads the store, so its first sync cannot write the source marker
        # (backup/markers.py, same text): write it here, but never into an empty directory,
        # which is what an unmounted disk leaves behind.
        marker=$real/.sentinel-source
        if [ -L "$marker" ]; then
            say "WARNING: $marker is a symbolic link (not written by sentinel): left alone;" \
                "remove it and run grant-read again"
        elif [ -d "$real" ] && [ ! -e "$marker" ]; then
            if [ -n "$(ls -A "$real")" ]; then
                # a new file made beside it and renamed over: rename replaces a link swapped
                # in meanwhile instead of writing through it
                tmp=$(mktemp "$real/.sentinel-source.XXXXXX")
                printf '%s\n%s\n' \
                    "This directory is replicated by sentinel. Do not delete this file: without it" \
                    "sentinel takes the directory for a missing or unmounted disk and stops." \
                    >"$tmp"
                chmod 0644 "$tmp"
                mv -f -T "$tmp" "$marker"
                say "$path: wrote the .sentinel-source marker (sentinel cannot write there itself)"
            else
                say "WARNING: $path is empty (an unmounted disk?): no .sentinel-source marker" \
                    "written; mount it and run grant-read again"
            fi
        fi
        # d:o::---: with a default ACL the kernel no longer applies the creating program's
        # umask, and the default "other" entry would be copied from the directory's mode; a
        # document the application writes with umask 077 would be readable by every local
        # user. New files get the directory's group bits and nothing for others instead.
        find "$real" -type d -exec setfacl -P \
            -m "u:$grant_user:rx,d:u:$grant_user:rx,d:o::---" {} + ||
            die "setfacl on the directories of $path failed (above)"
        find "$real" -type f -exec setfacl -P -m "u:$grant_user:r" {} + ||
            die "setfacl on the files of $path failed (above)"
        dirs=$(find "$real" -type d | wc -l)
        files=$(find "$real" ! -type d | wc -l)
        # uninstall --purge takes the service user's entries back before its uid is freed:
        # the next system account would get the same uid, and with it every document
        if [ "$grant_user" = "$USER_NAME" ] && [ -d "$CONFDIR" ] &&
            ! grep -qxF -- "$real" "$GRANTS" 2>/dev/null; then
            printf '%s\n' "$real" >>"$GRANTS"
        fi
        say "$path: $grant_user may read its $files files and enter its $dirs directories" \
            "(ACL u:$grant_user:r, rx on directories), and files made there later too" \
            "(default ACL)"
        # the ACLs do not help when a directory above does not let the user through
        if ! setpriv --reuid="$grant_user" --regid="$(id -g "$grant_user")" --init-groups \
            test -r "$real" -a -x "$real" 2>/dev/null; then
            say "WARNING: $grant_user still cannot reach $path: a directory above it denies" \
                "search (give it x, e.g. setfacl -m u:$grant_user:x <that directory>)"
        fi
    done
    set +f
    say "check: sentinel check-config --user $grant_user   (names the first path it cannot read)"
}

# revoke_read: removes the ACL entries grant-read gave the service user (the paths it kept
# in $GRANTS), so no later account that inherits the uid can read the store. Links are not
# followed (-P), as grant-read followed none.
revoke_read() {
    if ! live || [ ! -f "$GRANTS" ] || ! getent passwd "$USER_NAME" >/dev/null; then
        return
    fi
    while IFS= read -r real; do
        if [ -d "$real" ]; then
            if setfacl -R -P -x "u:$USER_NAME,d:u:$USER_NAME" "$real"; then
                say "$real: removed $USER_NAME's read access (grant-read)"
            else
                say "WARNING: could not remove every ACL entry of $USER_NAME under $real" \
                    "(above): getfacl -R -p $real | grep $USER_NAME"
            fi
        fi
    done <"$GRANTS"
}

do_install() {
    echo "Installing sentinel into ${DESTDIR:-/}"
    install_program
    drop_old_venv
    if [ "$ROLE" = keeper ]; then
        keeper_next_steps
        return
    fi
    cat <<EOF

Next steps:
  1. Edit $CONFDIR/sentinel.toml (sensors, alerts, replication); put the Apprise YAML,
     ssh key or rsync password file next to it, each 0640 root:$USER_NAME.
  2. Let it read the document store (ACLs, and the .sentinel-source marker):
       $0 grant-read /srv/onnara
     then: runuser -u $USER_NAME -- sentinel check-config   (names what it cannot read)
  3. Lock the MQTT broker: $PREFIX/share/doc/mqtt-broker.md
  4. Start it now and at boot:  systemctl enable --now sentinel
     (a bad config or a credential file others can read stops it with a clear message
     in journalctl -u sentinel, including the chmod/chown to run)
  5. Let an admin read status: usermod -aG $USER_NAME <admin>   (then log in again)
  6. Watch it:            sentinel status; journalctl -u sentinel -f
  The health-center side (ssh, or rsyncd inside stunnel) is in $PREFIX/share/doc/install.md
  and transport.md.
EOF
}

do_upgrade() {
    [ -e "$DESTDIR$MANIFEST" ] || die "no installation found ($MANIFEST missing): run install"
    echo "Upgrading sentinel in ${DESTDIR:-/} (config and state are kept)"
    install_program
    service=$(basename "$UNIT" .service)
    if live; then
        # A restart into a config this release refuses would leave the room unwatched, and
        # the running daemon must not be left on a release it was not started from (it
        # imports some modules late): the release before comes back.
        if [ -n "$CONFIG_REFUSED" ]; then
            again="scripts/install.sh upgrade"
            if [ "$ROLE" = keeper ]; then again="$again --keeper"; fi
            if [ -n "$VENV_OLD" ] && [ -e "$VENV_OLD" ]; then
                put_back_venv "$VENV_OLD" "$PREFIX/venv"
                die "upgrade stopped: the new release refuses $service's config (above), so" \
                    "the release before is back in $PREFIX/venv and $service was not" \
                    "restarted; fix the config, then run $again"
            fi
            say "did not restart $service: check-config refuses its config (above); fix it," \
                "then: systemctl restart $service"
        elif systemctl try-restart "$service.service"; then
            say "restarted $service if it was running"
        else
            say "could not restart $service: systemctl restart $service"
        fi
    fi
    drop_old_venv
}

# remove_program: delete the program parts the manifest lists; config and state are handled
# by the caller. Deepest paths first so directories are empty when their turn comes.
remove_program() {
    sort -t "$(printf '\t')" -k4,4 -r "$DESTDIR$MANIFEST" |
        while IFS="$(printf '\t')" read -r type _mode _owner path; do
            case $path in
            "$CONFDIR" | "$CONFDIR"/* | "$STATEDIR") continue ;;
            esac
            if shared "$path"; then continue; fi
            case $type in
            dir) rmdir "$DESTDIR$path" 2>/dev/null || true ;;
            venv) rm -rf "$DESTDIR$path" ;;
            *) rm -f "$DESTDIR$path" ;;
            esac
        done
}

do_uninstall() {
    purge=$1
    [ -e "$DESTDIR$MANIFEST" ] || die "no installation found ($MANIFEST missing)"
    echo "Uninstalling sentinel from ${DESTDIR:-/}"
    if live; then
        systemctl disable --now "$(basename "$UNIT")" 2>/dev/null || true
    fi
    if [ "$ROLE" = keeper ]; then
        uninstall_keeper "$purge"
        return
    fi
    # An untouched example config is ours; an edited one (and any credentials) is the admin's.
    config=$DESTDIR$CONFDIR/sentinel.toml
    untouched=no
    if [ -f "$config" ] && cmp -s "$config" "$DESTDIR$CONFDIR/sentinel.toml.example"; then
        untouched=yes
    fi
    remove_program
    rm -f "$DESTDIR$CONFDIR/sentinel.toml.example"
    if [ "$purge" = yes ]; then
        revoke_read
        rm -rf "$DESTDIR$CONFDIR" "$DESTDIR$STATEDIR"
        if live && getent passwd "$USER_NAME" >/dev/null; then
            userdel "$USER_NAME"
            if getent group "$USER_NAME" >/dev/null; then groupdel "$USER_NAME"; fi
        fi
        say "purged $CONFDIR, $STATEDIR and the $USER_NAME user"
    else
        if [ "$untouched" = yes ]; then rm -f "$config"; fi
        rmdir "$DESTDIR$CONFDIR" 2>/dev/null || say "kept $CONFDIR (your config and credentials)"
        say "kept $STATEDIR and the $USER_NAME user (uninstall --purge removes them)"
    fi
    if live; then
        reload_systemd
    fi
}

[ $# -ge 1 ] || die "usage: install.sh install | upgrade | uninstall [--purge]  [--keeper]" \
    "| grant-read PATH... [--user NAME]"
action=$1
shift
if [ "$action" = grant-read ]; then
    grant_read "$@"
    exit 0
fi
purge=no
for arg in "$@"; do
    case $arg in
    --keeper) use_keeper_role ;;
    --purge)
        [ "$action" = uninstall ] || die "$action takes no arguments but --keeper"
        purge=yes
        ;;
    *)
        if [ "$action" = uninstall ]; then die "uninstall takes only --purge and --keeper"; fi
        die "$action takes no arguments but --keeper"
        ;;
    esac
done
if live && [ "$(id -u)" != 0 ]; then
    die "run as root (or set DESTDIR to install into a staging root)"
fi
case $action in
install | upgrade) "do_$action" ;;
uninstall) do_uninstall "$purge" ;;
*) die "unknown action '$action': use install, upgrade or uninstall [--purge], each [--keeper]" ;;
esac
