#!/bin/sh
# A deploy hook for a Spring Boot service behind an ALB (the post's case): stop the old
# jar, fetch the new one, start it, wait until it answers its own health check locally.
# rollgate runs it after the target is drained, and may run it again after an
# interruption (ROLLGATE_ATTEMPT 2, 3...): every step is safe to repeat.
#
#   hooks: {deploy: ./examples/deploy-spring-boot.sh}
#   environment: ROLLGATE_TARGET_HOST (the instance's private address), ROLLGATE_VERSION,
#   ARTIFACT_BUCKET (passed with hook_env if it looks like a secret; it does not).
set -eu
host=${ROLLGATE_TARGET_HOST:?no ROLLGATE_TARGET_HOST: is the service an AWS target group?}
version=$ROLLGATE_VERSION
port=${ROLLGATE_TARGET_PORT:-8080}
echo "attempt ${ROLLGATE_ATTEMPT:-1}: deploying $ROLLGATE_SERVICE $version to $host"

ssh -o BatchMode=yes "deploy@$host" sh -eu <<REMOTE
# Stopping a stopped service succeeds: safe to repeat.
sudo systemctl stop app || true
# Fetch once: an interrupted earlier attempt may already have it (write, then rename).
if [ ! -f /srv/app/releases/app-$version.jar ]; then
    aws s3 cp "s3://${ARTIFACT_BUCKET:-my-artifacts}/app/app-$version.jar" /srv/app/releases/app-$version.jar.part
    mv /srv/app/releases/app-$version.jar.part /srv/app/releases/app-$version.jar
fi
ln -sfn /srv/app/releases/app-$version.jar /srv/app/current.jar
sudo systemctl start app
# The load balancer's health check comes after register; check locally first, so a broken
# build fails here, before the target is put back.
for i in \$(seq 1 60); do
    if curl -fsS "http://127.0.0.1:$port/actuator/health" | grep -q '"UP"'; then exit 0; fi
    sleep 2
done
echo "the app did not report UP within 120 s" >&2
exit 1
REMOTE
