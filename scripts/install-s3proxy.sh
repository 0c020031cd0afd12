#!/usr/bin/env bash
# Installs S3Proxy (the S3 server of off-site copies in tests): checks that a JDK 17 is
# there and fetches the runnable jar with Maven into the cache (outside the clone).
# services.sh runs it before starting s3. Safe to run again: skipped when the jar is there.

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SETUP_LOG="$LOG_DIR/setup.log"
DOWNLOAD=""
cleanup() {
    if [[ -n "$DOWNLOAD" ]]; then
        rm -rf "$DOWNLOAD"
    fi
}
trap cleanup EXIT

main() {
    mkdir -p "$LOG_DIR" "$CACHE_DIR"
    alien4cloud_java_home >/dev/null ||
        die "S3Proxy needs a JDK 17 and none was found under /usr/lib/jvm. Install one (apt-get install openjdk-17-jre-headless), or point A4C_ALIEN4CLOUD_JAVA_HOME at it."
    [[ -s "$S3PROXY_JAR" ]] && return 0
    # Downloaded into a temporary directory, so an interrupted fetch leaves no half jar.
    DOWNLOAD="$(mktemp -d "$CACHE_DIR/.download.XXXXXX")"
    say "downloading S3Proxy $S3PROXY_VERSION with Maven into $CACHE_DIR"
    # Run from the temporary directory so a pom.xml in the caller's directory is not used.
    if ! (cd "$DOWNLOAD" && mvn -B -q dependency:copy -Dartifact="$S3PROXY_ARTIFACT" \
        -DoutputDirectory="$DOWNLOAD") >>"$SETUP_LOG" 2>&1; then
        die "Maven could not download $S3PROXY_ARTIFACT. Check that A4C_S3PROXY_VERSION=$S3PROXY_VERSION is a published version and that Maven reaches its repository. Full log: $SETUP_LOG" "$SETUP_LOG"
    fi
    run_logged "$SETUP_LOG" "checking the downloaded jar" \
        unzip -tq "$DOWNLOAD/$(basename "$S3PROXY_JAR")"
    mv "$DOWNLOAD/$(basename "$S3PROXY_JAR")" "$S3PROXY_JAR"
}

main "$@"
