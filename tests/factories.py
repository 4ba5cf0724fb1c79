import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from smtpconfig.models import SmtpConfiguration


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))


class SmtpConfigurationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SmtpConfiguration

    name = factory.Sequence(lambda n: f"Mailserver {n}")
    mailer = "smtp"
    host = factory.Sequence(lambda n: f"smtp{n}.example.com")
    port = 587
    security = "starttls"
    timeout = 10
