#!/usr/bin/env bash
# Builds Alien4Cloud 3.7.0's REST server (no UI) from its source tarballs in
# A4C_ALIEN4CLOUD_SOURCE into the cache, outside the clone: the patched source with its
# build output, a private Maven repository, the runtime classpath and a stamp. services.sh
# runs it before starting a4c. None of Alien4Cloud's code is kept in this repository: only
# this script, which patches the extracted source at build time. Safe to run again: each step
# is skipped when its result is there, and a build whose stamp matches the tarballs is kept.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BUILD_LOG="$LOG_DIR/alien4cloud-build.log"
A4C_TARBALL="$ALIEN4CLOUD_SOURCE/alien4cloud-$ALIEN4CLOUD_VERSION-src.tar.gz"
MAPPING_VERSION=6.8.22-1
MAPPING_TARBALL="$ALIEN4CLOUD_SOURCE/elasticsearch-mapping-$MAPPING_VERSION-src.tar.gz"
# Lombok 1.18.16, the poms' version, fails on Java 16 and later.
LOMBOK_VERSION=1.18.30
M2_REPO="$ALIEN4CLOUD_HOME/m2"
MAPPING_JAR="$M2_REPO/org/alien4cloud/elasticsearch-mapping/$MAPPING_VERSION/elasticsearch-mapping-$MAPPING_VERSION.jar"
REST_API_JAR="$M2_REPO/alien4cloud/alien4cloud-rest-api/$ALIEN4CLOUD_VERSION/alien4cloud-rest-api-$ALIEN4CLOUD_VERSION.jar"
# On the test classpath only, or clashing: the signed jetty orbit servlet 3.0 jar fights
# servlet-api 3.1 over javax.servlet's signers.
CLASSPATH_EXCLUDES='/(junit|org/hamcrest|org/mockito|org/kubek2k|org/springframework/spring-test|org/projectlombok|org/eclipse/jetty/orbit/javax\.servlet/3\.0\.0[^/]*)/'
# The server's build: its source, the jars in M2_REPO and the raw Maven classpaths, checked
# against the tarballs by SERVER_STAMP. The final classpath and ALIEN4CLOUD_BUILT_STAMP (the
# tarballs and CLASSPATH_RECIPE) are derived from it in seconds.
SERVER_STAMP="$ALIEN4CLOUD_HOME/server.stamp"
RAW_CLASSPATH_DIR="$ALIEN4CLOUD_HOME/maven-classpath"
# Raise it when a change here changes the final classpath.
CLASSPATH_RECIPE=1

TEMP_DIRS=()
cleanup() {
    if ((${#TEMP_DIRS[@]})); then
        rm -rf "${TEMP_DIRS[@]}"
    fi
}
trap cleanup EXIT

check_sources() {
    local tarball
    for tarball in "$A4C_TARBALL" "$MAPPING_TARBALL"; do
        [[ -r "$tarball" ]] ||
            die "$tarball is missing. A4C_ALIEN4CLOUD_SOURCE=$ALIEN4CLOUD_SOURCE must name the directory holding alien4cloud-$ALIEN4CLOUD_VERSION-src.tar.gz and elasticsearch-mapping-$MAPPING_VERSION-src.tar.gz."
    done
    command -v mvn >/dev/null || die "Maven (mvn) is not installed: run scripts/setup.sh"
}

# A new tarball builds again.
sources_fingerprint() {
    sha256sum "$A4C_TARBALL" "$MAPPING_TARBALL" | awk '{print $1}'
}

built_fingerprint() {
    printf 'classpath recipe %s\n' "$CLASSPATH_RECIPE"
    sources_fingerprint
}

# The three known obstacles of building with Maven Central only, fixed in the extracted tree.
#
# The poms name repositories that are gone (jcenter, portaildulibre, repo.spring.io...). Their
# <repositories> and <pluginRepositories> are removed rather than mirrored: what remains is
# Maven's built-in central, which needs no URL in this repository, and no build waits on a
# dead host. Both things found only there are dealt with: the mapping library is built from
# its own tarball first, and spring-social-github (used by SocialConfig.java, active only
# under the github-auth profile) and the plantuml diagram plugin are removed.
patch_sources() {
    python3 - "$1" <<'EOF_PYTHON'
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])


def remove(path, pattern, expected):
    text = path.read_text(encoding="utf-8")
    text, count = re.subn(pattern, "", text, flags=re.S)
    if expected is not None and count != expected:
        sys.exit(f"{path}: expected {expected} match(es) of {pattern!r}, found {count}")
    path.write_text(text, encoding="utf-8")


for pom in root.rglob("pom.xml"):
    remove(pom, r"<repositories>.*?</repositories>", None)
    remove(pom, r"<pluginRepositories>.*?</pluginRepositories>", None)
a4c = root / "alien4cloud-3.7.0"
remove(
    a4c / "alien4cloud-security/pom.xml",
    r"<dependency>\s*<groupId>org\.springframework\.social</groupId>\s*"
    r"<artifactId>spring-social-github</artifactId>.*?</dependency>",
    1,
)
(a4c / "alien4cloud-security/src/main/java/alien4cloud/security/spring/github/SocialConfig.java").unlink()
remove(
    a4c / "alien4cloud-core/pom.xml",
    r"<plugin>\s*<groupId>fr\.fastconnect</groupId>\s*"
    r"<artifactId>plantuml-maven-plugin</artifactId>.*?</plugin>",
    1,
)
EOF_PYTHON
}

# mvn DIRECTORY ARGUMENTS...: Maven on Java 17 with the private repository, in batch mode.
a4c_mvn() {
    local directory="$1"
    shift
    (cd "$directory" && JAVA_HOME="$JAVA_HOME_17" mvn -B -ntp -Dmaven.repo.local="$M2_REPO" "$@")
}

build_server() {
    local work src raw
    mkdir -p "$ALIEN4CLOUD_HOME" "$LOG_DIR"
    rm -f "$SERVER_STAMP"
    # Unpacked and built in a temporary directory, so an interrupted build leaves no half tree.
    work="$(mktemp -d "$ALIEN4CLOUD_HOME/.build.XXXXXX")"
    TEMP_DIRS+=("$work")
    # shellcheck disable=SC2016  # expanded by the inner bash
    run_logged "$BUILD_LOG" "unpacking the Alien4Cloud $ALIEN4CLOUD_VERSION and mapping sources" \
        bash -c 'tar -xzf "$1" -C "$3" && tar -xzf "$2" -C "$3"' _ "$A4C_TARBALL" "$MAPPING_TARBALL" "$work"
    run_logged "$BUILD_LOG" "patching the extracted source for a build from Maven Central" \
        patch_sources "$work"
    src="$work/alien4cloud-$ALIEN4CLOUD_VERSION"

    # No javadoc or source jars: nobody reads them here, and they cost a third of the time.
    if [[ ! -s "$MAPPING_JAR" ]]; then
        run_logged "$BUILD_LOG" "building elasticsearch-mapping $MAPPING_VERSION (under a minute)" \
            a4c_mvn "$work/elasticsearch-mapping-$MAPPING_VERSION" install -DskipTests \
            -Dmaven.javadoc.skip=true -Dmaven.source.skip=true -Dlombok.version="$LOMBOK_VERSION"
    fi
    # -DskipTests, not -Dmaven.test.skip: core needs the test jars of test-common and tosca.
    run_logged "$BUILD_LOG" "building Alien4Cloud $ALIEN4CLOUD_VERSION's REST server (about 2 min; log: $BUILD_LOG)" \
        a4c_mvn "$src" -pl alien4cloud-rest-api -am install -DskipTests \
        -Dmaven.javadoc.skip=true -Dmaven.source.skip=true -Dlombok.version="$LOMBOK_VERSION"
    [[ -s "$REST_API_JAR" ]] || die "the build ended without $REST_API_JAR" "$BUILD_LOG"

    raw="$work/maven-classpath"
    mkdir -p "$raw"
    run_logged "$BUILD_LOG" "resolving the runtime classpath" \
        a4c_mvn "$src" -pl alien4cloud-rest-api dependency:build-classpath \
        -Dlombok.version="$LOMBOK_VERSION" -Dmdep.includeScope=runtime \
        -Dmdep.outputFile="$raw/runtime"
    run_logged "$BUILD_LOG" "resolving the provided classpath" \
        a4c_mvn "$src" -pl alien4cloud-rest-api dependency:build-classpath \
        -Dlombok.version="$LOMBOK_VERSION" -Dmdep.includeScope=provided \
        -Dmdep.outputFile="$raw/provided"

    rm -rf "$ALIEN4CLOUD_SRC" "$RAW_CLASSPATH_DIR"
    mv "$src" "$ALIEN4CLOUD_SRC"
    mv "$raw" "$RAW_CLASSPATH_DIR"
    sources_fingerprint >"$SERVER_STAMP"
}

# The classpath services.sh runs: the server's jar, then the runtime and provided scopes
# without the test-only jars and the clashing servlet jar, each jar once.
write_classpath() {
    {
        printf '%s\n' "$REST_API_JAR"
        cat "$RAW_CLASSPATH_DIR/runtime" <(echo) "$RAW_CLASSPATH_DIR/provided" | tr ':' '\n' |
            grep -v '^$' | grep -Ev "$CLASSPATH_EXCLUDES" | awk '!seen[$0]++'
    } >"$ALIEN4CLOUD_CLASSPATH_FILE.new"
    mv "$ALIEN4CLOUD_CLASSPATH_FILE.new" "$ALIEN4CLOUD_CLASSPATH_FILE"
    say "wrote the runtime classpath ($(wc -l <"$ALIEN4CLOUD_CLASSPATH_FILE") jars) to $ALIEN4CLOUD_CLASSPATH_FILE"
}

main() {
    check_sources
    JAVA_HOME_17="$(alien4cloud_java_home)" ||
        die "Alien4Cloud $ALIEN4CLOUD_VERSION needs a JDK 17 and none was found under /usr/lib/jvm. Install one, or point A4C_ALIEN4CLOUD_JAVA_HOME at it."
    if [[ -s "$ALIEN4CLOUD_BUILT_STAMP" && -s "$ALIEN4CLOUD_CLASSPATH_FILE" &&
        "$(<"$ALIEN4CLOUD_BUILT_STAMP")" == "$(built_fingerprint)" ]]; then
        say "Alien4Cloud $ALIEN4CLOUD_VERSION already built in $ALIEN4CLOUD_HOME"
        return
    fi
    rm -f "$ALIEN4CLOUD_BUILT_STAMP"
    if [[ ! -s "$SERVER_STAMP" || "$(<"$SERVER_STAMP")" != "$(sources_fingerprint)" ||
        ! -s "$REST_API_JAR" || ! -d "$ALIEN4CLOUD_SRC" ]]; then
        build_server
    fi
    write_classpath
    built_fingerprint >"$ALIEN4CLOUD_BUILT_STAMP"
    say "Alien4Cloud $ALIEN4CLOUD_VERSION built in $ALIEN4CLOUD_HOME"
}

main "$@"
