from django.views.generic import TemplateView


class SmtpConfigurationListView(TemplateView):
    template_name = "smtpconfig/list.html"
