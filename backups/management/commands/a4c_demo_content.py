"""manage.py a4c_demo_content: fills the configured real Alien4Cloud with demo content."""

from backups.alien4cloud import client as alien4cloud
from backups.alien4cloud import content
from backups.management import base as cli


class Command(cli.Command):
    help = (
        "Creates demo content in the Alien4Cloud of A4C_SERVER_URL through its REST API: "
        f"{len(content.DEMO_USERS)} users with roles (password demo-<name>), "
        f"{len(content.DEMO_GROUPS)} groups with members, {len(content.DEMO_CSARS)} CSARs "
        f"(one in two versions) and {len(content.DEMO_APPLICATIONS)} applications. Safe to "
        "run twice: what is there already is left as it is."
    )

    def handle(self, *args, **options):
        server = alien4cloud.server()
        verbose = options["verbosity"] >= 2
        state = content.fill_demo(server, say=self.say if verbose else lambda _: None)
        self.say(
            f"Alien4Cloud at {server.url} holds {len(state.users)} users, {len(state.groups)} "
            f"groups, {len(state.csars)} CSARs and {len(state.applications)} applications."
        )
