# testapp with a HEALTHCHECK: healthy once /tmp/healthy exists (see the -healthy-after and
# -unhealthy flags). No --start-period: Docker 20.10 refuses --start-period=0s ("cannot be less
# than 1ms"), and 0s is the default anyway.
FROM scratch
COPY testapp /testapp
HEALTHCHECK --interval=200ms --timeout=2s --retries=3 CMD ["/testapp", "health"]
ENTRYPOINT ["/testapp"]
