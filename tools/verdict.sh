#!/bin/sh
# verdict.sh STAGE TAP - the line make check reads from a stage that ran
# Criterion: how many tests passed and failed, from the TAP report written
# with --tap. Tests the run's filter left out are reported as skipped and
# count as neither. Fails when a test failed or when nothing ran.
stage=$1 tap=$2
passed=$(grep '^ok ' "$tap" | grep -vc '# SKIP')
failed=$(grep -c '^not ok ' "$tap")
echo "$stage: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
