"""Seed a Label Studio data directory for ``bench/annotate_bench.py --peer label-studio``.

Run with Label Studio's own Python (it lives in its own virtual environment: its pins clash
with prefloop's), after ``label-studio init``:

    LABEL_STUDIO_BASE_DATA_DIR=D python bench/peers/label_studio_seed.py N ANNOTATORS

Creates ANNOTATORS users with API tokens in the default organization, one pairwise project
(prompt, responses A and B, overlap 2 like prefloop's tasks) and N tasks with bulk inserts
(Label Studio's import API would be the bottleneck, and it is not what is measured). Prints
one JSON line: ``{"project": id, "tokens": [...]}``.
"""

import json
import os
import sys

import label_studio

sys.path.insert(0, os.path.dirname(label_studio.__file__))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")

import django  # noqa: E402

django.setup()

from organizations.models import Organization, OrganizationMember  # noqa: E402
from projects.models import Project  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from tasks.models import Task  # noqa: E402
from users.models import User  # noqa: E402

CONFIG = """<View>
  <Text name="prompt" value="$prompt"/>
  <Text name="a" value="$a"/>
  <Text name="b" value="$b"/>
  <Pairwise name="pw" toName="a,b"/>
</View>"""


def main() -> None:
    n, annotators = int(sys.argv[1]), int(sys.argv[2])
    org = Organization.objects.first()
    admin = org.created_by
    tokens = []
    for i in range(annotators):
        user = User.objects.create_user(email=f"bench{i:02d}@bench.local", password="benchpass123")
        user.active_organization = org
        user.save()
        OrganizationMember.objects.get_or_create(user=user, organization=org)
        tokens.append(Token.objects.get_or_create(user=user)[0].key)
    project = Project.objects.create(title="bench", label_config=CONFIG, created_by=admin,
                                     organization=org, maximum_annotations=2)
    batch = 5000
    for start in range(0, n, batch):
        Task.objects.bulk_create([
            Task(project=project, overlap=2, data={
                "prompt": f"Question {i}: please explain topic {i}.",
                "a": f"A careful answer about topic {i}.", "b": f"A sloppy answer about topic {i}."})
            for i in range(start, min(n, start + batch))])
    print(json.dumps({"project": project.id, "tokens": tokens}))


if __name__ == "__main__":
    main()
